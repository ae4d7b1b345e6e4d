import CLibPQ
import Foundation
import Reservoir

extension PostgresError {
    /// The SQLSTATEs of connection failures that retrying cannot fix: a wrong password (28P01), an unknown role or
    /// one that may not connect (28000), a database that does not exist (3D000).
    static let permanentConnectSQLStates: Set<SQLState> = [
        .invalidPassword, .invalidAuthorizationSpecification, .invalidCatalogName,
    ]

    /// The error for a connection attempt that libpq reported as failed, from libpq's message.
    ///
    /// The connection asks libpq for verbose messages while connecting (`PQERRORS_VERBOSE`), so a failure the server
    /// reported carries its severity and SQLSTATE as a structured prefix, `FATAL:  28P01: password authentication
    /// failed …`, in every locale: the SQLSTATE is read from there, never guessed from English text. The prefix's
    /// code and the `LOCATION:` line (the server's source file) are removed from the message.
    ///
    /// - Parameters:
    ///   - libpqMessage: `PQerrorMessage` of the failed connection, already redacted.
    /// - Returns: ``Code/connectionRejected`` for the SQLSTATEs in `permanentConnectSQLStates`, otherwise
    ///   ``Code/connectionFailed``; either with ``sqlState`` and ``severity`` when the server sent them.
    static func connectFailure(libpqMessage: String) -> PostgresError {
        var lines: [Substring] = []
        var sqlState: SQLState?
        var severity: String?
        for line in libpqMessage.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("LOCATION:") { continue }
            var line = line
            if let found = Self.severityAndSQLState(in: line) {
                sqlState = sqlState ?? found.sqlState
                severity = severity ?? found.severity
                line.removeSubrange(found.codeRange)
            }
            lines.append(line)
        }
        let message = lines.joined(separator: " ").trimmingNewlines()
        let permanent = sqlState.map { Self.permanentConnectSQLStates.contains($0) } ?? false
        var error = PostgresError(
            permanent ? .connectionRejected : .connectionFailed,
            message: message.isEmpty ? "connection failed" : message
        )
        error.sqlState = sqlState
        error.severity = severity
        return error
    }

    /// Finds `SEVERITY:  XXXXX: ` in a line of a verbose libpq message; returns the severity, the SQLSTATE and the
    /// range of `XXXXX: ` to remove.
    private static func severityAndSQLState(
        in line: Substring
    ) -> (severity: String, sqlState: SQLState, codeRange: Range<Substring.Index>)? {
        for severity in ["FATAL", "PANIC", "ERROR"] {
            var searchStart = line.startIndex
            while let marker = line[searchStart...].range(of: severity + ":") {
                searchStart = marker.upperBound
                var index = marker.upperBound
                while index < line.endIndex, line[index] == " " { index = line.index(after: index) }
                let codeStart = index
                var length = 0
                while index < line.endIndex, length < 5, line[index].isASCII,
                    line[index].isNumber || line[index].isUppercase
                {
                    index = line.index(after: index)
                    length += 1
                }
                guard length == 5, index < line.endIndex, line[index] == ":" else { continue }
                let code = String(line[codeStart..<index])
                index = line.index(after: index)
                while index < line.endIndex, line[index] == " " { index = line.index(after: index) }
                return (severity, SQLState(rawValue: code), codeStart..<index)
            }
        }
        return nil
    }
}

extension PostgresError {
    /// Where a connection attempt stands, in words, from libpq's status during a non-blocking connect.
    static func connectPhase(_ status: ConnStatusType) -> String {
        switch status {
        case CONNECTION_STARTED, CONNECTION_NEEDED: "waiting for the TCP or socket connection to be made"
        case CONNECTION_MADE: "connected, sending the startup message"
        case CONNECTION_AWAITING_RESPONSE: "connected, waiting for the server to answer the startup message"
        case CONNECTION_AUTH_OK: "authenticated, waiting for the server process to start"
        case CONNECTION_SSL_STARTUP: "connected, negotiating SSL"
        case CONNECTION_GSS_STARTUP: "connected, negotiating GSSAPI encryption"
        case CONNECTION_CHECK_WRITABLE, CONNECTION_CHECK_TARGET, CONNECTION_CHECK_STANDBY:
            "connected, checking the server's properties (target_session_attrs)"
        case CONNECTION_OK: "connected"
        default: "connection status \(status.rawValue)"
        }
    }
}

extension PostgresError: PermanentCreationFailure {
    /// Whether opening a connection failed for a reason that retrying cannot fix (``Code/connectionRejected``): the
    /// pool's circuit breaker opens at the first such failure.
    public var isPermanent: Bool { code == .connectionRejected }
}
