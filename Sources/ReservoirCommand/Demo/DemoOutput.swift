import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where the demo writes its view and summary.
public protocol DemoOutput: Sendable {
    /// Whether the output is a terminal that understands ANSI escapes (full-screen view) or a pipe or file (plain
    /// periodic lines).
    var isTerminal: Bool { get }
    /// The terminal's width in columns.
    var width: Int { get }
    /// Writes text as it is (include newlines).
    func write(_ text: String)
}

/// Standard output, with terminal detection through `isatty`.
public struct StandardOutput: DemoOutput {
    public let isTerminal: Bool
    public let width: Int

    /// Detects whether standard output is a terminal and its width.
    public init() {
        isTerminal = isatty(STDOUT_FILENO) == 1
        var size = winsize()
        if isTerminal, ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 {
            width = Int(size.ws_col)
        } else {
            width = 100
        }
    }

    public func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes {
                Glibc.write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset)
            }
            if written <= 0 { break }
            offset += written
        }
    }
}

/// Collects everything written, for tests and for callers that show the output themselves.
public final class RecordedOutput: DemoOutput {
    public let isTerminal: Bool
    public let width: Int
    private let buffer = Mutex("")

    /// Creates an empty recording.
    ///
    /// - Parameters:
    ///   - isTerminal: whether to pretend to be a terminal.
    ///   - width: the pretended width.
    public init(isTerminal: Bool = false, width: Int = 100) {
        self.isTerminal = isTerminal
        self.width = width
    }

    public func write(_ text: String) {
        buffer.withLock { $0 += text }
    }

    /// Everything written so far.
    public var text: String { buffer.withLock { $0 } }
}
