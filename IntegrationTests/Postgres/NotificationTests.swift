import ReservoirPostgres
import Testing

@Suite("LISTEN and NOTIFY")
struct NotificationTests {
    @Test("a listening connection receives notifications from another connection, in order")
    func listen() async throws {
        let listener = try await TestDatabase.connect()
        let sender = try await TestDatabase.connect()
        let channel = "events \"quoted\" \(TestDatabase.uniqueName("c"))"
        let notifications = try await listener.listen(channel)
        try await sender.notify(channel: channel, payload: "first")
        try await sender.withTransaction { transaction in
            try await transaction.connection.notify(channel: channel, payload: "second ü")
        }
        var received: [PostgresNotification] = []
        for await notification in notifications {
            received.append(notification)
            if received.count == 2 { break }
        }
        #expect(received.map(\.payload) == ["first", "second ü"])
        #expect(received.allSatisfy { $0.channel == channel && $0.processID == sender.backendProcessID })
        // The listener still runs statements.
        #expect(try await listener.query("SELECT 1").singleValue(Int32.self) == 1)
        await sender.close()
        await listener.close()
    }

    @Test("the notification sequence ends when the connection closes")
    func endsOnClose() async throws {
        let listener = try await TestDatabase.connect()
        let notifications = try await listener.listen("closing")
        await listener.close()
        var count = 0
        for await _ in notifications { count += 1 }
        #expect(count == 0)
    }

    @Test("an empty channel name is rejected before anything is sent")
    func invalidChannel() async throws {
        try await TestDatabase.withConnection { (connection: PostgresConnection) async throws in
            let error = try await #require(throws: PostgresError.self) { try await connection.listen("") }
            #expect(error.code == .invalidArgument)
        }
    }
}
