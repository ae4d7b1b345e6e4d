import Testing

@testable import ReservoirPostgres

@Suite("PostgresRateLimiter configuration")
struct PostgresRateLimiterConfigurationTests {
    @Test("invalid settings are rejected naming the field", arguments: [
        "rate", "infiniteRate", "burst", "batchSize", "batchAboveBurst", "cachedPermitLifetime", "key", "tableName",
    ])
    func invalidSettings(setting: String) {
        var configuration = PostgresRateLimiter.Configuration(key: "api", rate: 100, burst: 10)
        let field: String
        switch setting {
        case "rate": configuration.rate = 0; field = "rate"
        case "infiniteRate": configuration.rate = .infinity; field = "rate"
        case "burst": configuration.burst = 0; field = "burst"
        case "batchSize": configuration.batchSize = 0; field = "batchSize"
        case "batchAboveBurst": configuration.batchSize = 11; field = "batchSize"
        case "cachedPermitLifetime": configuration.cachedPermitLifetime = .zero; field = "cachedPermitLifetime"
        case "key": configuration.key = ""; field = "key"
        default: configuration.tableName = String(repeating: "t", count: 64); field = "tableName"
        }
        #expect {
            try configuration.validate()
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .invalidConfiguration && error.message.contains(".\(field) ")
        }
    }

    @Test("the defaults are valid")
    func defaultsAreValid() throws {
        try PostgresRateLimiter.Configuration(key: "api", rate: 0.5, burst: 1).validate()
    }

    @Test("the acquire statement quotes the table name and is a single upsert")
    func statementQuotesTable() {
        let sql = PostgresRateLimiter.acquireStatement(tableName: "my \"limits\"")
        #expect(sql.hasPrefix("INSERT INTO \"my \"\"limits\"\"\" AS bucket"))
        #expect(sql.contains("ON CONFLICT (key) DO UPDATE SET"))
        #expect(!sql.contains(";"))
        #expect(PostgresRateLimiter.migration(tableName: "x").contains("CREATE UNLOGGED TABLE IF NOT EXISTS \"x\""))
    }
}
