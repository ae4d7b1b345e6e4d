import Testing

@testable import ReservoirPostgres

@Suite("Secrets: configurations, libpq's parse errors, recorded statement text")
struct PostgresSecretsTests {
    static let secret = "Sup3r-Secret-Value"

    @Test("dump(), description and reflection of both configurations never show the password")
    func configurations() throws {
        let connection = try PostgresConnection.Configuration(
            connectionString: "postgresql://app:\(Self.secret)@db:5432/app?sslmode=require"
        )
        let pool = PostgresPool.Configuration(connection: connection, name: "orders")
        for value in [connection as Any, pool as Any] {
            var dumped = ""
            dump(value, to: &dumped)
            #expect(!dumped.contains(Self.secret), "dump: \(dumped)")
            #expect(dumped.contains("password=********"))
            #expect(!String(describing: value).contains(Self.secret))
            #expect(!String(reflecting: value).contains(Self.secret))
            let children = Mirror(reflecting: value).children.map { String(describing: $0.value) }.joined()
            #expect(!children.contains(Self.secret))
        }
    }

    @Test(
        "libpq's message about a malformed connection string never carries the password, whatever the typo",
        arguments: [
            "host=db password:\(secret)",
            "host=db password\(secret)",
            "host=db password \(secret)",
            "host=db password\(secret)=1",
            "host=db password='\(secret)",
            "host=db password:\"\(secret)",
            "postgresql://app:\(secret)@[::1/db",
            "postgresql://app:\(secret)@db/app?password",
            "postgresql://app@db/app?password=\(secret)&nonsense",
            "postgresql://app@db/app?passwordx\(secret)=1",
            "postgresql://app:\(secret)@db/app?x=%zz",
            "postgresql://app:\(secret)@db/app?x=%00",
            "postgresql://app@db:\(secret)/app",
        ]
    )
    func parseErrors(connectionString: String) throws {
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: connectionString)
        }
        #expect(error.code == .invalidConfiguration)
        #expect(!error.description.contains(Self.secret), "\(error.description)")
        #expect(!error.description.contains("Sup3r"), "\(error.description)")
    }

    @Test("an unknown option that reads as a keyword is still named in the message")
    func unknownOptionNamed() throws {
        let error = try #require(throws: PostgresError.self) {
            try PostgresConnection.Configuration(connectionString: "host=db bogus=1")
        }
        #expect(error.message.contains("\"bogus\""))
    }

    @Test("only text without literals is recorded as db.query.text", arguments: [
        ("SELECT name FROM users WHERE id = $1 AND team = $2", true),
        ("SELECT t1.col_2, \"Weird \"\"9\"\" name\" FROM t1 -- a comment 42\nWHERE x = $10", true),
        ("SELECT now() /* 5 */", true),
        ("SELECT * FROM users WHERE password = 'hunter2'", false),
        ("SELECT * FROM cards WHERE number = 4111111111111111", false),
        ("SELECT $$secret$$", false),
        ("SELECT $tag$secret$tag$", false),
        ("SELECT E'\\x41'", false),
        ("SELECT X'1F'", false),
        ("SELECT .5", false),
        ("SELECT \"unterminated", false),
        ("SELECT 1 /* unterminated", false),
    ])
    func recordedText(sql: String, recorded: Bool) {
        #expect(StatementTracing.holdsNoLiterals(sql) == recorded)
    }

    @Test("a placeholder followed at once by a digit is an encoding failure of the query, found before sending")
    func placeholderFollowedByDigit() {
        let a = 7
        let bad: PostgresQuery = "SELECT \(a)0"
        let failure = bad.bindings.encodingFailure
        #expect(failure?.code == .encodingFailed)
        #expect(failure?.message.contains("$1") == true)
        let good: PostgresQuery = "SELECT \(a) + 0, \(a)::int8, (\(a))0"
        #expect(good.bindings.encodingFailure == nil)
        let identifier: PostgresQuery = "SELECT * FROM \(identifier: "t")0"
        #expect(identifier.bindings.encodingFailure == nil)
    }
}
