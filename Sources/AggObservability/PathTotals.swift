/// Counts each path's bytes from the daemon's start: the engine's counters belong to one path of one association
/// and start again from zero after a reconnection or an address change, so the bytes of paths that are gone are
/// kept under the path's lasting identity (the client's key name, the path's name, the remote IP) and added to the
/// path that takes its place. At most `capacity` gone identities are kept (the smallest total is forgotten first),
/// so a server whose clients come and go from ever new addresses stays bounded.
struct PathTotals {
    /// Bytes sent and received, one path's or a sum.
    struct Bytes {
        var sent = 0
        var received = 0
        var total: Int { sent + received }

        static func += (a: inout Bytes, b: Bytes) {
            a.sent += b.sent
            a.received += b.received
        }
    }

    /// The bytes of gone paths, by lasting identity.
    private var retired: [String: Bytes] = [:]
    /// What each path (by snapshot id) had at the previous update, under which identity.
    private var previous: [String: (identity: String, bytes: Bytes)] = [:]
    let capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
    }

    /// The lasting identity of `path` of an association with key `client`.
    static func identity(_ path: StatusSnapshot.Path, client: String?) -> String {
        "\(client ?? "")/\(path.name)/\(path.remote)"
    }

    /// Sets every path's `totalBytes` (and each way, `totalBytesSent` and `totalBytesReceived`): its own bytes, plus, on the first path of its identity, those of
    /// the gone paths that had it. Paths seen at the previous update and missing now (or renamed, or counting from zero
    /// again) are retired.
    mutating func update(_ associations: inout [StatusSnapshot.Association]) {
        var current: [String: (identity: String, bytes: Bytes)] = [:]
        for association in associations {
            for path in association.paths {
                current[path.id] = (
                    Self.identity(path, client: association.client),
                    Bytes(sent: path.bytesSent, received: path.bytesReceived)
                )
            }
        }
        // Gone, renamed, or counting from zero again (a new association under a reused id).
        for (id, before) in previous {
            guard let now = current[id], now.identity == before.identity, now.bytes.sent >= before.bytes.sent,
                now.bytes.received >= before.bytes.received
            else {
                retired[before.identity, default: Bytes()] += before.bytes
                continue
            }
        }
        previous = current
        if retired.count > capacity, let smallest = retired.min(by: { $0.value.total < $1.value.total }) {
            retired[smallest.key] = nil
        }
        var credited = Set<String>()
        for a in associations.indices {
            for p in associations[a].paths.indices {
                let path = associations[a].paths[p]
                let identity = Self.identity(path, client: associations[a].client)
                var total = Bytes(sent: path.bytesSent, received: path.bytesReceived)
                if credited.insert(identity).inserted { total += retired[identity] ?? Bytes() }
                associations[a].paths[p].totalBytes = total.total
                associations[a].paths[p].totalBytesSent = total.sent
                associations[a].paths[p].totalBytesReceived = total.received
            }
        }
    }
}
