/// The per-connection cache of prepared statements: SQL text and parameter types to a server-side name.
///
/// Bounded: when full, the least recently used statement is deallocated on the server before a new one is
/// prepared. Lookups and insertions are O(1); eviction scans the entries, which happens only on a miss when full.
/// Protected by the connection's lock.
struct StatementCache {
    struct Key: Hashable {
        var sql: String
        var types: [UInt32]
    }

    enum Lookup {
        case hit(name: String)
        case miss(name: String, evicting: String?)
    }

    private struct Entry {
        var name: String
        var lastUse: UInt64
    }

    let capacity: Int
    private var entries: [Key: Entry] = [:]
    private var clock: UInt64 = 0
    private var nextNumber: UInt64 = 1

    init(capacity: Int) {
        self.capacity = max(capacity, 0)
    }

    var isEnabled: Bool { capacity > 0 }
    var count: Int { entries.count }

    mutating func makeName() -> String {
        defer { nextNumber += 1 }
        return "rsv_s\(nextNumber)"
    }

    /// Finds a statement; on a miss, picks a name and, when the cache is full, the statement to evict.
    mutating func lookup(_ key: Key) -> Lookup {
        clock += 1
        if let index = entries.index(forKey: key) {
            entries.values[index].lastUse = clock
            return .hit(name: entries.values[index].name)
        }
        var evicted: String?
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries.removeValue(forKey: oldest.key)
            evicted = oldest.value.name
        }
        return .miss(name: makeName(), evicting: evicted)
    }

    /// The name of a cached statement (marking it used), or `nil`; never evicts.
    mutating func hit(_ key: Key) -> String? {
        guard let index = entries.index(forKey: key) else { return nil }
        clock += 1
        entries.values[index].lastUse = clock
        return entries.values[index].name
    }

    /// Whether a new statement fits without evicting one.
    var hasRoom: Bool { entries.count < capacity }

    mutating func insert(_ key: Key, name: String) {
        clock += 1
        entries[key] = Entry(name: name, lastUse: clock)
    }

    mutating func remove(_ key: Key) {
        entries.removeValue(forKey: key)
    }

    mutating func removeAll() {
        entries.removeAll()
    }
}
