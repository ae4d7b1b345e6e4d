import Foundation
import Logging
import ReservoirPostgres
import ReservoirPostgresTestKit
import ReservoirCommand
import Testing

@Suite("reservoir command against a real server")
struct ReservoirCommandIntegrationTests {
    @Test("demo runs end to end on its own throwaway server and reports the planted leak and dirty return")
    func demo() async throws {
        var options = DemoRunner.Options()
        options.duration = .seconds(3)
        options.clients = 8
        options.poolSize = 4
        let output = RecordedOutput()
        let summary = try await DemoRunner(options: options).run(output: output)

        // Three seconds of eight clients: well over a hundred operations on a quiet machine, fewer under load.
        #expect(summary.completed > 10)
        #expect(summary.failed == 0)
        #expect(summary.leaks.count == 1)
        #expect(summary.leaks.first?.count == 1)
        #expect(summary.leaks.first?.site.contains("DemoWorkload.swift") == true)
        #expect(summary.leaks.first?.site.contains("plantLeak") == true)
        #expect(summary.dirtyReturns.map(\.count) == [1])
        #expect(summary.dirtyReturns.first?.site.contains("DemoWorkload.swift") == true)
        // The planted long hold is reported once. On a loaded machine an ordinary operation may also pass the
        // threshold; that is reported under its own site, so only the planted one is counted here.
        let plantedHolds = summary.longHolds.filter { $0.site.contains("plantLongHold") }
        #expect(plantedHolds.map(\.count) == [1])

        // At least one periodic frame was printed before the summary ("t=<seconds>s idle=…").
        let text = output.text
        #expect(text.contains(/t=[0-9]+\.[0-9]s idle=/))
        #expect(text.contains("leaks (dropped without release): 1"))
        #expect(text.contains("dirty returns (inside a transaction): 1"))
        #expect(!text.contains("\u{1B}["), "plain output has no escape sequences")
    }

    @Test("check reports the server's figures and this connection's application_name")
    func checkReports() async throws {
        var configuration = try await TestDatabase.configuration()
        try configuration.set("application_name", to: "reservoir-check-test")
        let report = try await DatabaseCheck.run(configuration: configuration, logger: Logger(label: "test"))
        #expect(report.serverVersion.hasPrefix("1"))
        #expect(report.maxConnections >= 10)
        #expect(report.connectionsByApplication.contains { $0.name == "reservoir-check-test" && $0.count == 1 })
        #expect(report.lines.contains { $0.hasPrefix("warn idle_in_transaction_session_timeout is off") })
    }

    @Test("check with a wrong password fails with the server's reason and without the password")
    func checkWrongPassword() async throws {
        let server = try await TestDatabase.server.value
        let wrong = "not-the-Password-9911"
        let configuration = try PostgresConnection.Configuration(
            connectionString: server.connection.connectionString(transport: .tcp, user: "app", password: wrong)
        )
        let error = try await #require(throws: PostgresError.self) {
            try await DatabaseCheck.run(configuration: configuration, logger: Logger(label: "test"))
        }
        #expect(error.message.contains("password authentication failed"))
        #expect(!error.description.contains(wrong))
        #expect(!"\(configuration)".contains(wrong))
    }

    @Test("advise measures three sizes, fits them, and writes a well-formed SVG report")
    func advise() async throws {
        let server = try await TestDatabase.server.value
        let reportPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("reservoir-advise-\(UUID().uuidString).svg").path
        defer { try? FileManager.default.removeItem(atPath: reportPath) }
        var options = AdviseRunner.Options()
        options.connectionString = server.connection.unixSocketConnectionString
        options.query = "SELECT 1"
        options.durationPerSize = .milliseconds(300)
        options.maximumSize = 4
        options.instances = 2
        options.reportPath = reportPath
        let (advice, description) = try await AdviseRunner(options: options).run { _ in }

        #expect(description == "SELECT 1")
        #expect(advice.points.map(\.concurrency) == [1, 2, 4])
        #expect(advice.points.allSatisfy { $0.throughput > 0 && $0.latencyP99 >= $0.latencyP50 })
        #expect(advice.recommendedPerInstance >= 1)
        #expect(advice.budget.instances == 2)
        let svg = try String(contentsOfFile: reportPath, encoding: .utf8)
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(try AdviseRunner.json(advice).contains("\"recommendedPerInstance\""))
    }
}
