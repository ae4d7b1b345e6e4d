import ReservoirPostgres

/// An order as the API returns it.
public struct Order: Codable, Hashable, Sendable {
    /// The order's number.
    public var id: Int64
    /// Who ordered.
    public var customer: String
    /// The item's stock-keeping unit, such as `item-7`.
    public var item: String
    /// How many.
    public var quantity: Int32
    /// Price × quantity, in cents.
    public var totalCents: Int64
}

/// The body of `POST /orders`.
public struct NewOrder: Codable, Hashable, Sendable {
    /// Who orders: 1 to 64 characters.
    public var customer: String
    /// The item: one of `item-1` … `item-100` in the seeded catalogue.
    public var item: String
    /// How many: 1 to 1000.
    public var quantity: Int32

    /// Creates a request body.
    public init(customer: String, item: String, quantity: Int32) {
        self.customer = customer
        self.item = item
        self.quantity = quantity
    }

    /// What is wrong with the body, or `nil` when it is acceptable.
    var problem: String? {
        if customer.isEmpty || customer.count > 64 { return "customer must be 1 to 64 characters" }
        if item.isEmpty || item.count > 64 { return "item must be 1 to 64 characters" }
        if !(1...1000).contains(quantity) { return "quantity must be between 1 and 1000" }
        return nil
    }
}

/// Why an order could not be created, as the client should hear it.
enum OrderRejection: Error, Equatable {
    /// The item is not in the catalogue.
    case unknownItem
    /// The item's stock is too low.
    case outOfStock
}

/// The database answered something the service's SQL rules out.
struct StoreInconsistency: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The service's SQL: the schema, the order transaction and the reads. Every value travels as a bound parameter.
struct OrderStore: Sendable {
    let pool: PostgresPool
    /// Added to each order transaction as `pg_sleep` (see ``OrdersConfiguration/simulatedQueryTime``).
    let simulatedQueryTime: Duration

    /// Creates the tables when they do not exist and seeds the catalogue (100 items with a stock that a load test
    /// does not exhaust). Safe to run at every start.
    func migrate() async throws {
        try await pool.withConnection { connection in
            try await connection.unsafeExecuteScript(
                """
                CREATE TABLE IF NOT EXISTS items (
                    sku text PRIMARY KEY,
                    price_cents bigint NOT NULL CHECK (price_cents >= 0),
                    stock bigint NOT NULL CHECK (stock >= 0)
                );
                CREATE TABLE IF NOT EXISTS orders (
                    id bigserial PRIMARY KEY,
                    customer text NOT NULL,
                    sku text NOT NULL REFERENCES items (sku),
                    quantity integer NOT NULL,
                    total_cents bigint NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer, id DESC);
                CREATE TABLE IF NOT EXISTS order_events (
                    id bigserial PRIMARY KEY,
                    order_id bigint NOT NULL,
                    kind text NOT NULL,
                    recorded_at timestamptz NOT NULL DEFAULT now()
                );
                CREATE TABLE IF NOT EXISTS customer_totals (
                    customer text PRIMARY KEY,
                    orders bigint NOT NULL,
                    spent_cents bigint NOT NULL
                );
                INSERT INTO items (sku, price_cents, stock)
                    SELECT 'item-' || n, 100 * n, 1000000000000 FROM generate_series(1, 100) AS n
                    ON CONFLICT (sku) DO NOTHING;
                """
            )
        }
    }

    /// Creates an order in one transaction: takes the stock, then inserts the order.
    ///
    /// - Throws: ``OrderRejection`` for an unknown item or too little stock (the transaction rolls back);
    ///   the pool's and the driver's errors.
    func create(_ order: NewOrder) async throws -> Order {
        let sleepSeconds = Double(simulatedQueryTime.components.seconds)
            + Double(simulatedQueryTime.components.attoseconds) / 1e18
        return try await pool.withTransaction { transaction in
            let taken = try await transaction.query(
                """
                UPDATE items SET stock = stock - \(Int64(order.quantity))
                WHERE sku = \(order.item) AND stock >= \(Int64(order.quantity))
                RETURNING price_cents
                """
            )
            guard let price = try taken.singleValue(Int64.self) else {
                let known = try await transaction.query("SELECT 1 FROM items WHERE sku = \(order.item)")
                throw known.isEmpty ? OrderRejection.unknownItem : OrderRejection.outOfStock
            }
            let total = price * Int64(order.quantity)
            let inserted = try await transaction.query(
                """
                INSERT INTO orders (customer, sku, quantity, total_cents)
                VALUES (\(order.customer), \(order.item), \(order.quantity), \(total))
                RETURNING id
                """
            )
            guard let id = try inserted.singleValue(Int64.self) else {
                throw StoreInconsistency(message: "INSERT … RETURNING id returned no row")
            }
            if sleepSeconds > 0 {
                try await transaction.execute("SELECT pg_sleep(\(sleepSeconds))")
            }
            return Order(id: id, customer: order.customer, item: order.item, quantity: order.quantity, totalCents: total)
        }
    }

    /// The order with this number, or `nil`.
    func order(id: Int64) async throws -> Order? {
        let rows = try await pool.query(
            "SELECT id, customer, sku, quantity, total_cents FROM orders WHERE id = \(id)"
        )
        return try rows.first.map(Self.order(from:))
    }

    /// A customer's most recent orders, newest first.
    func orders(customer: String, limit: Int) async throws -> [Order] {
        let rows = try await pool.query(
            """
            SELECT id, customer, sku, quantity, total_cents FROM orders
            WHERE customer = \(customer) ORDER BY id DESC LIMIT \(Int64(limit))
            """
        )
        return try rows.map(Self.order(from:))
    }

    /// Records a batch of created orders: one event row each and the customers' running totals, in one transaction.
    func record(_ events: [OrderCreated]) async throws {
        let orderIDs = events.map(\.orderID)
        let customers = events.map(\.customer)
        let totals = events.map(\.totalCents)
        try await pool.withTransaction { transaction in
            try await transaction.execute(
                "INSERT INTO order_events (order_id, kind) SELECT unnest(\(orderIDs)::int8[]), 'created'"
            )
            try await transaction.execute(
                """
                INSERT INTO customer_totals (customer, orders, spent_cents)
                SELECT customer, count(*), sum(total) FROM unnest(\(customers)::text[], \(totals)::int8[])
                    AS batch(customer, total) GROUP BY customer
                ON CONFLICT (customer) DO UPDATE SET orders = customer_totals.orders + excluded.orders,
                    spent_cents = customer_totals.spent_cents + excluded.spent_cents
                """
            )
        }
    }

    /// A customer's running totals, as the background jobs recorded them.
    func totals(customer: String) async throws -> (orders: Int64, spentCents: Int64)? {
        let rows = try await pool.query(
            "SELECT orders, spent_cents FROM customer_totals WHERE customer = \(customer)"
        )
        return try rows.first.map { try $0.decode((Int64, Int64).self) }
    }

    /// Waits for the PostgreSQL advisory lock `key` in shared mode inside a transaction, holding a connection and a
    /// limiter permit meanwhile (the test hook `GET /debug/hold/:key`).
    func holdUntilUnlocked(key: Int64) async throws {
        try await pool.withTransaction { transaction in
            try await transaction.execute("SELECT pg_advisory_xact_lock_shared(\(key))")
        }
    }

    static func order(from row: PostgresRow) throws -> Order {
        let (id, customer, item, quantity, total) = try row.decode((Int64, String, String, Int32, Int64).self)
        return Order(id: id, customer: customer, item: item, quantity: quantity, totalCents: total)
    }
}
