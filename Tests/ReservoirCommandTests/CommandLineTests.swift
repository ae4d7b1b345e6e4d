import ArgumentParser
import Testing

@testable import ReservoirCommand

@Suite("Command line")
struct CommandLineTests {
    /// The message `reservoir` would print for these arguments, or `nil` when they parse.
    static func message(_ arguments: [String]) -> String? {
        do {
            _ = try ReservoirCLI.parseAsRoot(arguments)
            return nil
        } catch {
            return ReservoirCLI.message(for: error)
        }
    }

    @Test("demo parses its options with their defaults")
    func demoDefaults() throws {
        let command = try #require(try ReservoirCLI.parseAsRoot(["demo"]) as? DemoCommand)
        #expect(command.duration.duration == .seconds(20))
        #expect(command.poolSize == 8)
        #expect(command.clients == 24)
        #expect(command.database.databaseURL == nil)
        let shortened = try #require(try ReservoirCLI.parseAsRoot(["demo", "--duration", "2.5"]) as? DemoCommand)
        #expect(shortened.duration.duration == .milliseconds(2_500))
    }

    @Test(
        "bad values get a message naming the option",
        arguments: [
            (["demo", "--duration", "0"], "--duration"),
            (["demo", "--duration", "soon"], "--duration"),
            (["demo", "--duration", "nan"], "--duration"),
            (["demo", "--pool-size", "0"], "--pool-size must be between 1 and 1000"),
            (["demo", "--allow-writes"], "--allow-writes needs --database-url"),
            (["demo", "--knee", "0"], "--knee must be at least 1"),
            (["advise", "--max-size", "2"], "--max-size must be between 4 and 10000"),
            (["advise", "--instances", "0"], "--instances must be between 1 and 10000"),
            (["advise", "--query", "  "], "--query must not be empty"),
            (["check", "--database-url", "postgresql://app:hunter2@%zz/db"], "--database-url"),
            (["check", "--database-url", "host=localhost bogus=1"], "bogus"),
        ]
    )
    func badValues(arguments: [String], expected: String) throws {
        let message = try #require(Self.message(arguments))
        #expect(message.contains(expected))
    }

    @Test("a bad connection string's message never shows the password")
    func passwordNotEchoed() throws {
        let message = try #require(Self.message(["check", "--database-url", "postgresql://app:hunter2@%zz/db"]))
        #expect(!message.contains("hunter2"))
    }

    @Test("advise takes its budget and output options")
    func adviseOptions() throws {
        let command = try #require(
            try ReservoirCLI.parseAsRoot([
                "advise", "--instances", "4", "--reserved", "10", "--max-size", "32", "--json", "--output", "r.svg",
            ]) as? AdviseCommand
        )
        #expect(command.instances == 4)
        #expect(command.reserved == 10)
        #expect(command.maxSize == 32)
        #expect(command.json)
        #expect(command.output == "r.svg")
        #expect(!command.allowWrites)
        let writing = try #require(try ReservoirCLI.parseAsRoot(["advise", "--allow-writes"]) as? AdviseCommand)
        #expect(writing.allowWrites)
    }

    @Test("demo takes the database's knee and self-sizing")
    func demoSizingOptions() throws {
        let command = try #require(
            try ReservoirCLI.parseAsRoot(["demo", "--knee", "6", "--self-sizing"]) as? DemoCommand
        )
        #expect(command.knee == 6)
        #expect(command.selfSizing)
        let plain = try #require(try ReservoirCLI.parseAsRoot(["demo"]) as? DemoCommand)
        #expect(plain.knee == nil)
        #expect(!plain.selfSizing)
    }

    @Test("an unknown subcommand is refused")
    func unknownSubcommand() {
        #expect(Self.message(["serve"]) != nil)
    }
}
