import ArgumentParser
import Foundation
import Testing

@testable import ReservoirCommand

@Suite("--database-url from the command line, a file or the environment")
struct DatabaseOptionsTests {
    @Test("--database-url-file reads the URL from a file, so that the password stays out of ps")
    func fromFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reservoir-url-\(UUID().uuidString)")
        try "postgresql://app:file-Secret-1@db/app\n".write(to: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: path) }
        let command = try #require(
            try ReservoirCLI.parseAsRoot(["check", "--database-url-file", path.path]) as? CheckCommand
        )
        #expect(command.database.databaseURL == "postgresql://app:file-Secret-1@db/app")
    }

    @Test("RESERVOIR_DATABASE_URL is used when neither option is given, and an option wins over it")
    func fromEnvironment() throws {
        var options = try DatabaseOptions.parse([])
        options.databaseURL = nil
        try options.resolve(environment: ["RESERVOIR_DATABASE_URL": " postgresql://env@db/app "])
        #expect(options.databaseURL == "postgresql://env@db/app")
        var given = try DatabaseOptions.parse(["--database-url", "postgresql://flag@db/app"])
        try given.resolve(environment: ["RESERVOIR_DATABASE_URL": "postgresql://env@db/app"])
        #expect(given.databaseURL == "postgresql://flag@db/app")
    }

    @Test("both options at once, or an unreadable file, are refused with a message naming the option")
    func refused() {
        #expect(CommandLineTests.message(["check", "--database-url", "x", "--database-url-file", "/y"])?
            .contains("not both") == true)
        #expect(CommandLineTests.message(["check", "--database-url-file", "/nonexistent/reservoir-url"])?
            .contains("--database-url-file") == true)
    }

    @Test("--help says where else the URL can come from")
    func help() {
        let help = CheckCommand.helpMessage(columns: 200)
        #expect(help.contains("--database-url-file"))
        #expect(help.contains("RESERVOIR_DATABASE_URL"))
        #expect(help.contains("ps"))
    }

    @Test("reservoir check never prints a password that a typo put where libpq quotes it", arguments: [
        "host=db password:check-Secret-9", "host=db passwordcheck-Secret-9", "postgresql://u:check-Secret-9@[::1/db",
    ])
    func checkRedacts(url: String) {
        let message = CommandLineTests.message(["check", "--database-url", url])
        #expect(message?.contains("--database-url") == true)
        #expect(message?.contains("check-Secret-9") == false)
    }
}
