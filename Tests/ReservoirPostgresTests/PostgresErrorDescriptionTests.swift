import Foundation
import Reservoir
import Testing

@testable import ReservoirPostgres

/// What `description` (logs, `localizedDescription`, a pool error's text) shows of a `PostgresError`, and what only
/// `debugDescription` and the properties hold.
@Suite("PostgresError descriptions: no values, parts kept apart")
struct PostgresErrorDescriptionTests {
    static func uniqueViolation(statement: String) -> PostgresError {
        var error = PostgresError(
            .server, message: "duplicate key value violates unique constraint \"users_email_key\"")
        error.sqlState = .uniqueViolation
        error.severity = "ERROR"
        error.detail = "Key (email)=(alice-7731@example.com) already exists."
        error.tableName = "users"
        error.constraintName = "users_email_key"
        error.statement = statement
        return error
    }

    @Test("the server's DETAIL is in debugDescription only; the SQLSTATE, constraint and table are in both")
    func detailOnlyInDebugDescription() {
        let error = Self.uniqueViolation(statement: "INSERT INTO users (email) VALUES ($1)")
        #expect(
            error.description == "PostgresError.server: duplicate key value violates unique constraint "
                + "\"users_email_key\" (SQLSTATE 23505; constraint users_email_key; table users). "
                + "Statement: INSERT INTO users (email) VALUES ($1)"
        )
        #expect(error.localizedDescription == error.description)
        #expect(
            String(reflecting: error) == "PostgresError.server: duplicate key value violates unique constraint "
                + "\"users_email_key\" (SQLSTATE 23505; constraint users_email_key; table users). "
                + "Detail: Key (email)=(alice-7731@example.com) already exists. "
                + "Statement: INSERT INTO users (email) VALUES ($1)"
        )
    }

    @Test("a statement with a literal value is left out of the description, kept in debugDescription")
    func literalStatementOnlyInDebugDescription() {
        let error = Self.uniqueViolation(statement: "INSERT INTO users (email) VALUES ('bob-5512@example.com')")
        #expect(!error.description.contains("bob-5512"))
        #expect(!error.description.contains("Statement"))
        #expect(
            String(reflecting: error).contains("Statement: INSERT INTO users (email) VALUES ('bob-5512@example.com')")
        )
    }

    @Test("a data exception's quoted input value is replaced in the description; names elsewhere stay quoted")
    func dataExceptionValueRedacted() {
        var invalid = PostgresError(
            .server, message: "invalid input syntax for type integer: \"card-4111111111111111\"")
        invalid.sqlState = SQLState(rawValue: "22P02")
        #expect(
            invalid.description
                == "PostgresError.server: invalid input syntax for type integer: \"…\" (SQLSTATE 22P02)"
        )
        #expect(invalid.message.contains("card-4111111111111111"))
        #expect(String(reflecting: invalid).contains("card-4111111111111111"))

        var range = PostgresError(.server, message: "value \"99999999999\" is out of range for type integer")
        range.sqlState = SQLState(rawValue: "22003")
        #expect(
            range.description == "PostgresError.server: value \"…\" is out of range for type integer (SQLSTATE 22003)"
        )

        var undefined = PostgresError(.server, message: "relation \"no_such_table\" does not exist")
        undefined.sqlState = .undefinedTable
        #expect(undefined.description.contains("relation \"no_such_table\" does not exist"))
    }

    @Test("SQLSTATE, position, hint and statement are separated, not run together")
    func partsAreSeparated() {
        var syntax = PostgresError(.server, message: "syntax error at or near \"SELEC\"")
        syntax.sqlState = .syntaxError
        syntax.position = 1
        syntax.hint = "Check the spelling."
        syntax.statement = "SELEC $1"
        #expect(
            syntax.description
                == "PostgresError.server: syntax error at or near \"SELEC\" (SQLSTATE 42601; position 1). "
                + "Hint: Check the spelling. Statement: SELEC $1"
        )
    }

    @Test("a decoding error names its column once, in its message")
    func decodingErrorNamesColumnOnce() {
        var error = PostgresError(
            .decodingFailed,
            message: "column \"name\" (index 0) of type text cannot be decoded as Int"
        )
        error.columnName = "name"
        error.dataTypeName = "text"
        #expect(
            error.description
                == "PostgresError.decodingFailed: column \"name\" (index 0) of type text cannot be decoded as Int"
        )
    }

    @Test("an invalid configuration names its field")
    func configurationNamesField() {
        let error = PostgresError(
            .invalidConfiguration,
            message: "connectTimeout must be positive",
            field: "connectTimeout"
        )
        #expect(
            error.description
                == "PostgresError.invalidConfiguration: connectTimeout must be positive (field connectTimeout)"
        )
    }

    @Test("a pool error wrapping a PostgresError shows its safe description; its debugDescription the detail")
    func nestedInPoolError() {
        let error = ResourcePoolError(
            .circuitBreakerOpen,
            message: "creating resources keeps failing",
            underlying: Self.uniqueViolation(statement: "INSERT INTO users (email) VALUES ($1)")
        )
        #expect(error.description.contains("SQLSTATE 23505"))
        #expect(!error.description.contains("alice-7731"))
        #expect(!error.localizedDescription.contains("alice-7731"))
        #expect(String(reflecting: error).contains("alice-7731"))
    }

    @Test("a Codable error is described without the value it refused")
    func codingErrorsWithoutValues() {
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int?
            init(stringValue: String) { self.stringValue = stringValue }
            init(intValue: Int) {
                self.stringValue = "\(intValue)"
                self.intValue = intValue
            }
        }
        let encoding = EncodingError.invalidValue(
            "secret-7741",
            .init(codingPath: [Key(stringValue: "items"), Key(intValue: 0)], debugDescription: "bad secret-7741")
        )
        #expect(PostgresError.describingWithoutValues(encoding) == "invalid value at items[0]")
        let decoding = DecodingError.dataCorrupted(
            .init(codingPath: [Key(stringValue: "price")], debugDescription: "Number 1e400-7741 is not representable")
        )
        #expect(PostgresError.describingWithoutValues(decoding) == "invalid data at price")
    }
}
