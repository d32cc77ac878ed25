/// The client's map from UDP flows (one SOCKS5 UDP relay, one client source port, one target) to the flow ids they
/// carry over the association, both ways, with idle expiry. Ids are never reused within a table: a datagram of a
/// forgotten flow can never be taken for a new one. Pure: time is passed in as nanoseconds.
package struct UDPFlowTable {
    /// What makes a flow: which relay (UDP ASSOCIATE) it came through, the client's source port, the destination.
    package struct Key: Hashable {
        package var relay: Int
        package var clientPort: UInt16
        package var target: StreamTarget

        package init(relay: Int, clientPort: UInt16, target: StreamTarget) {
            self.relay = relay
            self.clientPort = clientPort
            self.target = target
        }
    }

    /// A flow and when it last carried a datagram either way.
    package struct Entry: Equatable {
        package var key: Key
        var lastActivity: UInt64
    }

    /// The most flows at once; a new flow beyond it is refused.
    let limit: Int
    private(set) var byKey: [Key: UInt32] = [:]
    private(set) var byID: [UInt32: Entry] = [:]
    private var nextID: UInt32 = 1

    package init(limit: Int) {
        self.limit = limit
    }

    var count: Int { byID.count }

    /// The flow id for `key`, made when new (`isNew`); nil when the table is full or the ids ran out.
    package mutating func flow(for key: Key, now: UInt64) -> (id: UInt32, isNew: Bool)? {
        if let id = byKey[key] {
            byID[id]?.lastActivity = now
            return (id, false)
        }
        guard byID.count < limit, nextID != 0 else { return nil }
        let id = nextID
        nextID &+= 1
        byKey[key] = id
        byID[id] = Entry(key: key, lastActivity: now)
        return (id, true)
    }

    /// The flow `id` carried a datagram back: its entry, with its activity refreshed; nil for an unknown id.
    package mutating func receive(on id: UInt32, now: UInt64) -> Entry? {
        guard byID[id] != nil else { return nil }
        byID[id]!.lastActivity = now
        return byID[id]
    }

    /// Forgets flow `id`; true when it was known.
    @discardableResult
    package mutating func remove(_ id: UInt32) -> Bool {
        guard let entry = byID.removeValue(forKey: id) else { return false }
        byKey[entry.key] = nil
        return true
    }

    /// Forgets every flow of `relay` (its UDP ASSOCIATE ended) and returns their ids, in order.
    package mutating func removeAll(relay: Int) -> [UInt32] {
        let ids = byID.filter { $0.value.key.relay == relay }.map(\.key).sorted()
        for id in ids { remove(id) }
        return ids
    }

    /// Forgets every flow idle for `idle` nanoseconds or more and returns their ids, in order.
    package mutating func expire(now: UInt64, idle: UInt64) -> [UInt32] {
        let ids = byID.filter { now &- $0.value.lastActivity >= idle }.map(\.key).sorted()
        for id in ids { remove(id) }
        return ids
    }

    /// Forgets every flow (the association went away); ids keep counting up.
    package mutating func removeAll() {
        byKey.removeAll()
        byID.removeAll()
    }
}
