/// Draws a `DashboardSnapshot` for a terminal, or as one plain line for logs and pipes.
public enum DashboardRenderer {
    /// A full-screen frame: clears the screen and draws the view with ANSI colours.
    ///
    /// - Parameters:
    ///   - snapshot: what to show.
    ///   - width: the terminal's width in columns (at least 60 is used).
    /// - Returns: the text to write, starting with the escape sequence that moves to the top left and clears.
    public static func frame(_ snapshot: DashboardSnapshot, width: Int = 80) -> String {
        let width = max(60, min(width, 120))
        let bold = "\u{1B}[1m"
        let dim = "\u{1B}[2m"
        let green = "\u{1B}[32m"
        let yellow = "\u{1B}[33m"
        let red = "\u{1B}[31m"
        let cyan = "\u{1B}[36m"
        let reset = "\u{1B}[0m"
        var lines: [String] = []
        let progress = snapshot.duration > .zero ? min(1, snapshot.elapsed.seconds / snapshot.duration.seconds) : 0
        lines.append(
            "\(bold)reservoir demo\(reset) — pool \(cyan)\(snapshot.poolName)\(reset)   "
                + "\(fixed(snapshot.elapsed.seconds, 1))s / \(fixed(snapshot.duration.seconds, 0))s "
                + bar(progress, width: 20, fill: "█", empty: "░")
        )
        lines.append("")
        let capacity = max(snapshot.maximumSize, snapshot.idle + snapshot.leased + snapshot.creating, 1)
        let barWidth = width - 30
        var connectionBar = String(repeating: "█", count: cells(snapshot.leased, of: capacity, width: barWidth))
        connectionBar = "\(yellow)\(connectionBar)\(reset)"
        connectionBar += "\(green)" + String(repeating: "█", count: cells(snapshot.idle, of: capacity, width: barWidth))
        connectionBar += "\(cyan)" + String(repeating: "▒", count: cells(snapshot.creating, of: capacity, width: barWidth))
        let used = cells(snapshot.leased, of: capacity, width: barWidth)
            + cells(snapshot.idle, of: capacity, width: barWidth)
            + cells(snapshot.creating, of: capacity, width: barWidth)
        connectionBar += "\(dim)" + String(repeating: "·", count: max(0, barWidth - used)) + "\(reset)"
        lines.append("\(bold)connections\(reset)  \(connectionBar)")
        lines.append(
            "             \(yellow)leased \(snapshot.leased)\(reset)  \(green)idle \(snapshot.idle)\(reset)  "
                + "\(cyan)creating \(snapshot.creating)\(reset)  max \(Self.maximum(snapshot))   "
                + "\(snapshot.waiters > 0 ? red : dim)waiters \(snapshot.waiters)\(reset)"
        )
        lines.append("")
        lines.append(
            "\(bold)acquire wait\(reset) p50 \(milliseconds(snapshot.acquireWaitP50))  "
                + "p99 \(milliseconds(snapshot.acquireWaitP99))"
        )
        lines.append(
            "\(bold)hold time   \(reset) p50 \(milliseconds(snapshot.holdTimeP50))  "
                + "p99 \(milliseconds(snapshot.holdTimeP99))"
        )
        lines.append(
            "\(bold)throughput  \(reset) \(fixed(snapshot.throughput, 0)) ops/s   completed \(snapshot.completed)   "
                + "\(snapshot.failed > 0 ? red : dim)failed \(snapshot.failed)\(reset)"
        )
        if !snapshot.sizing.isEmpty {
            lines.append("\(bold)sizing      \(reset) \(snapshot.sizing)")
        }
        lines.append("")
        lines.append(contentsOf: siteSection("leaks (dropped without release)", snapshot.leaks, colour: red))
        lines.append(contentsOf: siteSection("held past the leak threshold", snapshot.longHolds, colour: yellow))
        lines.append(contentsOf: siteSection("dirty returns (inside a transaction)", snapshot.dirtyReturns, colour: red))
        let clipped = lines.map { clip($0, width: width) }
        return "\u{1B}[H\u{1B}[2J" + clipped.joined(separator: "\n") + "\n"
    }

    /// One line of plain text with the same figures, for when standard output is not a terminal.
    ///
    /// - Parameter snapshot: what to show.
    /// - Returns: the line, without a trailing newline.
    /// The maximum as shown: `8`, or `5 of 8 (self-sizing)` when the effective maximum differs.
    static func maximum(_ snapshot: DashboardSnapshot) -> String {
        guard snapshot.effectiveMaximumSize > 0, snapshot.effectiveMaximumSize != snapshot.maximumSize else {
            return "\(snapshot.maximumSize)"
        }
        return "\(snapshot.effectiveMaximumSize) of \(snapshot.maximumSize) (self-sizing)"
    }

    public static func plainLine(_ snapshot: DashboardSnapshot) -> String {
        "t=\(fixed(snapshot.elapsed.seconds, 1))s idle=\(snapshot.idle) leased=\(snapshot.leased) "
            + "creating=\(snapshot.creating) waiters=\(snapshot.waiters) "
            + "effective_max=\(snapshot.effectiveMaximumSize) max=\(snapshot.maximumSize) "
            + "wait_p50=\(milliseconds(snapshot.acquireWaitP50)) wait_p99=\(milliseconds(snapshot.acquireWaitP99)) "
            + "hold_p50=\(milliseconds(snapshot.holdTimeP50)) hold_p99=\(milliseconds(snapshot.holdTimeP99)) "
            + "ops_per_s=\(fixed(snapshot.throughput, 0)) completed=\(snapshot.completed) failed=\(snapshot.failed) "
            + "leaks=\(snapshot.leaks.reduce(0) { $0 + $1.count }) "
            + "dirty_returns=\(snapshot.dirtyReturns.reduce(0) { $0 + $1.count })"
    }

    static func siteSection(_ title: String, _ sites: [DashboardSnapshot.SiteCount], colour: String) -> [String] {
        let total = sites.reduce(0) { $0 + $1.count }
        var lines = ["\u{1B}[1m\(title)\u{1B}[0m: \(total > 0 ? colour : "")\(total)\u{1B}[0m"]
        for site in sites.prefix(3) {
            lines.append("    \(site.count)× at \(site.site)")
        }
        return lines
    }

    static func cells(_ value: Int, of capacity: Int, width: Int) -> Int {
        guard capacity > 0, value > 0 else { return 0 }
        return max(1, Int((Double(value) / Double(capacity) * Double(width)).rounded()))
    }

    static func bar(_ fraction: Double, width: Int, fill: Character, empty: Character) -> String {
        let filled = Int((fraction * Double(width)).rounded())
        return String(repeating: fill, count: filled) + String(repeating: empty, count: width - filled)
    }

    /// Clips a line to `width` visible columns, not counting ANSI escape sequences.
    static func clip(_ line: String, width: Int) -> String {
        var visible = 0
        var out = ""
        var inEscape = false
        for character in line {
            if character == "\u{1B}" {
                inEscape = true
            }
            if inEscape {
                out.append(character)
                if character.isLetter { inEscape = false }
                continue
            }
            guard visible < width else { continue }
            out.append(character)
            visible += 1
        }
        return out + (inEscape ? "" : "\u{1B}[0m")
    }

    /// A duration in seconds as milliseconds with a precision that suits its size: `0.042ms`, `1.35ms`, `120ms`.
    public static func milliseconds(_ seconds: Double) -> String {
        let ms = seconds * 1000
        if ms >= 100 { return "\(fixed(ms, 0))ms" }
        if ms >= 1 { return "\(fixed(ms, 2))ms" }
        return "\(fixed(ms, 3))ms"
    }

    /// A number with a fixed count of decimals, without Foundation's formatters.
    static func fixed(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(value) * scale).rounded()
        let integer = Int(scaled / scale)
        let fraction = Int(scaled - Double(integer) * scale)
        let sign = value < 0 && scaled > 0 ? "-" : ""
        guard decimals > 0 else { return "\(sign)\(integer)" }
        let digits = String(fraction)
        return "\(sign)\(integer)." + String(repeating: "0", count: decimals - digits.count) + digits
    }
}
