import Crypto
import HeapModule
import NIOCore
import SCTPEngine

/// aggserver's side of the datagram layer, sans-IO: it answers HELLOs from key holders with a HELLO-ACK and a new
/// session, opens data datagrams by session id (whatever address or path they come from), and seals outgoing SCTP
/// packets with the session that last authenticated a datagram from their destination address. Anything that does
/// not authenticate is dropped at O(1) cost, allocates nothing and is never answered. Tables are bounded: sessions
/// per key, sessions in all, remembered HELLOs per key, addresses per session. The X25519 exchange of a new session
/// runs only for a HELLO that passed every cheaper check; the server's ephemeral private key is forgotten as soon as
/// the session keys are derived, and only the HELLO-ACK it answered with is kept (for repeats). Each client is
/// served in the handshake version of its HELLO (any of `Configuration.versions`), and its session keeps
/// that version's data layout: packed (compact, SCTP packets without ports and checksum) from version 5, compact
/// (4-byte session id) for version 4, full (8-byte) for version 3.
///
/// Keys are kept apart. Every key has its own `SCTPOwner`: an opened datagram carries its key's owner into the
/// engine, which lets it reach that key's associations only, and an outgoing packet is sealed only with a session of
/// the owner it carries. Routes (which session seals toward an address) are per key, so a key holder that
/// authenticates datagrams "from" another client's address (spoofed, or the same NAT mapping reused) takes nothing
/// from that client: the clash is counted, and each key keeps sealing with its own sessions.
///
/// Nothing scales with the number of sessions per datagram or per timer: a datagram costs a table lookup, and each
/// session waits in a heap of deadlines (its idle, unconfirmed or grace deadline, checked lazily when it comes up).
package struct ServerDatagramSecurity {
    /// Tunables; the defaults suit real networks.
    package struct Configuration: Sendable {
        /// Pass plaintext SCTP (RFC 6951) on to the engine instead of dropping it (`--allow-plaintext`).
        package var allowPlaintext = false
        /// How far a HELLO's timestamp may lie from the server's clock, either way.
        var timestampWindow: Int64 = 60
        /// Sessions in all; further HELLOs are dropped until one expires.
        var maxSessions = 16384
        /// Sessions per key; a new one beyond it replaces that key's least recently used session.
        var sessionsPerKey = 8
        /// HELLOs remembered per key for the replay check; when full (and none has aged out of the timestamp
        /// window), that key's further HELLOs are dropped.
        var hellosRememberedPerKey = 64
        /// Remote addresses remembered per session for sealing (paths, NAT rebindings).
        var addressesPerSession = 16
        /// A session no datagram authenticated for this long is forgotten (SCTP heartbeats every 15 s and agg
        /// PINGs every 30 s keep a live one busy).
        var idleTimeout: SCTPDuration = .seconds(300)
        /// A session whose client never sent a data datagram is forgotten after this long.
        var unconfirmedTimeout: SCTPDuration = .seconds(30)
        /// How long a session replaced by a rekey still opens datagrams.
        var gracePeriod: SCTPDuration = .seconds(60)
        /// A repeated HELLO (the HELLO-ACK was lost) is answered again at most this many times.
        var helloAckRepeats = 4
        /// The shard this server is of (one per event loop behind SO_REUSEPORT): its session ids' low 32 bits (all
        /// of a compact id) are congruent to the shard's index, so the kernel's steering rule (`ReusePortSteering`)
        /// brings every data datagram of a session to the shard that made it.
        package var shard = SCTPShard.single
        /// The handshake versions served; tests narrow it to play an older server.
        var versions = SecureDatagram.supportedVersions

        package init() {}
    }

    /// One client key the server accepts.
    private struct KeyEntry {
        let name: String
        let material: [UInt8]
        let key: SymmetricKey
        /// The engine's owner for everything this key authenticates; a new key (or new material under an old name)
        /// gets a new one, so nothing of a replaced key stays reachable.
        let owner: SCTPOwner
        var sessions: [UInt64] = []
        /// When a HELLO of a foreign version was last answered with VERSION.
        var lastVersionAnswer: SCTPTime?
        /// Recent HELLOs: client random, its timestamp, the session it created.
        var hellos: [(random: ArraySlice<UInt8>, timestamp: Int64, sessionID: UInt64)] = []
    }

    struct Session {
        var cipher: SessionCipher
        let keyID: UInt64
        let owner: SCTPOwner
        /// The HELLO-ACK that created the session, resent as is to a repeated HELLO: the same server random and
        /// ephemeral public key, so the client derives the same keys whichever copy reaches it.
        let helloAck: [UInt8]
        var helloAckRepeats = 0
        /// A data datagram authenticated: the client holds the keys.
        var isConfirmed = false
        var lastSeen: SCTPTime
        /// Set once a newer session of the same client took over.
        var expires: SCTPTime?
        /// The session this one replaces (a rekey), until this one is confirmed.
        var predecessor: UInt64?
        /// Remote addresses whose outgoing datagrams this session seals, oldest first.
        var addresses: [SCTPSocketAddress] = []
        /// The time of this session's pending entry in `expiries` (other entries of it are ignored).
        var checkAt: SCTPTime?
    }

    /// A session to look at when `time` comes: it is forgotten then if its deadline has really passed.
    struct Expiry: Comparable {
        var time: SCTPTime
        var id: UInt64

        static func < (a: Expiry, b: Expiry) -> Bool { a.time < b.time }
    }

    /// A remote address as one key sees it.
    struct Route: Hashable {
        var owner: SCTPOwner
        var address: SCTPSocketAddress
    }

    let configuration: Configuration
    private var keys: [UInt64: KeyEntry] = [:]
    private var lastOwner: UInt64 = 0
    private(set) var sessions = SessionTable()
    /// Which session of a key seals datagrams to a remote address.
    private(set) var routes: [Route: UInt64] = [:] {
        didSet { lastSealedRoute = nil }
    }
    /// The route the last datagram was sealed by, with its session's slot (as of the table's `generation`) and
    /// overhead: a run of datagrams to one address looks the session up once, since hashing an address or a session
    /// id costs more than comparing one (the id's lookup was 134 instructions per sealed datagram). Forgotten
    /// whenever `routes` changes.
    private var lastSealedRoute: (route: Route, slot: Int, generation: Int, layout: DataLayout)?
    /// How many keys route to each remote address: more than one is a clash (counted, never obeyed).
    private var routeOwners: [SCTPSocketAddress: Int] = [:]
    private var outbox = CircularBuffer<SCTPDatagram>()
    private var events = CircularBuffer<DatagramSecurityEvent>()
    private var random: any RandomNumberGenerator
    /// Every session's next check, earliest first; entries of forgotten or rescheduled sessions stay until they
    /// come up and are skipped.
    private var expiries = Heap<Expiry>()
    package private(set) var statistics = DatagramSecurityStatistics()

    package init(
        keys: [PreSharedKey], configuration: Configuration = Configuration(), random: any RandomNumberGenerator
    ) {
        self.configuration = configuration
        self.random = random
        replaceKeys(keys)
    }

    /// The owners of today's keys that `list` drops or changes: their associations must end (before
    /// `replaceKeys(_:)`, so that the ABORT still leaves sealed for the client).
    package func revokedOwners(by list: [PreSharedKey]) -> [SCTPOwner] {
        keys.compactMap { id, entry in
            list.contains {
                SecureDatagram.keyID(for: $0.key) == id && $0.key == entry.material && $0.name == entry.name
            }
                ? nil : entry.owner
        }
    }

    /// Replaces the accepted keys (SIGHUP): sessions of a removed or changed key end at once, and its owner with
    /// them. Returns the owners that no longer exist.
    @discardableResult
    package mutating func replaceKeys(_ list: [PreSharedKey]) -> [SCTPOwner] {
        var table: [UInt64: KeyEntry] = [:]
        for key in list {
            let id = SecureDatagram.keyID(for: key.key)
            if var kept = keys[id], kept.material == key.key, kept.name == key.name {
                kept.sessions = kept.sessions.filter { sessions[$0] != nil }
                table[id] = kept
            } else {
                lastOwner += 1
                table[id] = KeyEntry(
                    name: key.name, material: key.key, key: SymmetricKey(data: key.key),
                    owner: SCTPOwner(rawValue: lastOwner))
            }
        }
        let live = Set(table.values.map(\.owner))
        let revoked = keys.values.map(\.owner).filter { !live.contains($0) }
        let ended = sessions.ids { !live.contains($0.owner) }
        keys = table
        for id in ended { removeSession(id) }
        return revoked
    }

    /// The name of the key a session was made with.
    func keyName(ofSession id: UInt64) -> String? {
        sessions[id].flatMap { keys[$0.keyID]?.name }
    }

    /// The engine owner of the key named `name`.
    package func owner(ofKeyNamed name: String) -> SCTPOwner? {
        keys.values.first { $0.name == name }?.owner
    }

    /// The name of the key behind an engine owner.
    package func keyName(of owner: SCTPOwner) -> String? {
        keys.values.first { $0.owner == owner }?.name
    }

    // MARK: - Input

    /// The SCTP datagram inside a received datagram, or nil when it was a handshake message or was dropped.
    package mutating func open(_ datagram: consuming SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        let type = datagram.payload.getInteger(at: datagram.payload.readerIndex, as: UInt8.self)
        switch type.flatMap(SecureDatagram.Kind.init(rawValue:)) {
        case .data:
            switch openData(&datagram, layout: .full, clock: clock) {
            case .opened: return consume datagram
            case .spent: return nil
            case .notOpened: break
            }
        case .compactData:
            switch openData(&datagram, layout: .compact, clock: clock) {
            case .opened: return consume datagram
            case .spent: return nil
            case .notOpened: break
            }
        case .packedData:
            switch openData(&datagram, layout: .packed, clock: clock) {
            case .opened: return consume datagram
            case .spent: return nil
            case .notOpened: break
            }
        case .hello:
            if receiveHello(datagram, clock: clock) { return nil }
        case .helloAck, .version, nil:
            break
        }
        // Not ours, or it did not authenticate: plaintext SCTP when allowed (the engine checks its CRC).
        guard configuration.allowPlaintext else {
            switch type.flatMap(SecureDatagram.Kind.init(rawValue:)) {
            case nil: statistics.droppedPlaintext += 1
            case .helloAck, .version: statistics.droppedMalformed += 1
            case .hello, .data, .compactData, .packedData: break  // Counted where it failed.
            }
            return nil
        }
        statistics.plaintextAccepted += 1
        return datagram
    }

    /// What became of a data datagram.
    private enum DataOutcome {
        /// Opened in place: the datagram is now the SCTP packet, with its session's owner.
        case opened
        /// Not opened, bytes untouched (no such session, malformed, replayed): plaintext SCTP where allowed.
        case notOpened
        /// A session's datagram whose tag failed: opened in place, its bytes are zeros now, nothing to try further.
        case spent
    }

    /// Opens `datagram` in place (the payload narrowed to the SCTP packet, no new buffer and no reference taken).
    private mutating func openData(
        _ datagram: inout SCTPDatagram, layout: DataLayout, clock: SecurityClock
    )
        -> DataOutcome
    {
        guard datagram.payload.readableBytes > layout.overhead, let id = layout.sessionID(of: datagram.payload) else {
            statistics.droppedMalformed += 1
            return .notOpened
        }
        // One lookup; from here on the session is reached in place in its slot (no copy of it, and none of
        // Dictionary's modify accessor, which allocated on every call). Full and compact ids share the table: a
        // datagram of the other layout does not name the session.
        guard let slot = sessions.slot(of: id) else {
            statistics.droppedUnknownSession += 1
            return .notOpened
        }
        let (sessionLayout, expires, owner) = Self.inspect(&sessions.slots[slot])
        guard sessionLayout.opens(layout) else {
            statistics.droppedUnknownSession += 1
            return .notOpened
        }
        if let expires, clock.monotonic >= expires {
            statistics.droppedUnknownSession += 1
            return .notOpened
        }
        if let failure = sessions.slots[slot]!.cipher.open(inPlace: &datagram.payload) {
            statistics.count(failure)
            return failure == .badTag ? .spent : .notOpened
        }
        statistics.opened += 1
        authenticated(id, slot: slot, from: datagram.source, now: clock.monotonic)
        datagram.owner = owner
        datagram.integrityVerified = true  // The AEAD tag covered it: the engine skips the CRC32c.
        datagram.portsElided = layout == .packed
        return .opened
    }

    /// What `openData` checks of a session, read in place: each read of `sessions.slots[slot]!` copied the whole
    /// session (its keys and address list retained and released), three times per datagram.
    private static func inspect(_ session: inout Session?) -> (DataLayout, SCTPTime?, SCTPOwner) {
        (session!.cipher.layout, session!.expires, session!.owner)
    }

    /// A datagram of session `id` authenticated from `source`: the session is alive and seals toward `source`.
    private mutating func authenticated(_ id: UInt64, slot: Int, from source: SCTPSocketAddress, now: SCTPTime) {
        sessions.slots[slot]!.lastSeen = now
        if !sessions.slots[slot]!.isConfirmed {
            sessions.slots[slot]!.isConfirmed = true
            if let old = sessions.slots[slot]!.predecessor, let predecessor = sessions[old] {
                // The client has the new keys: every address of the old session is sealed with the new one, and
                // the old one opens in-flight datagrams for the grace period.
                sessions[old]!.expires = now + configuration.gracePeriod
                scheduleCheck(old)
                for address in predecessor.addresses
                where routes[Route(owner: predecessor.owner, address: address)] == old {
                    route(address, to: id)
                }
            }
            sessions.slots[slot]!.predecessor = nil
        }
        // A superseded session's late datagrams must not pull the address back to the old keys.
        let owner = sessions.slots[slot]!.owner
        if routes[Route(owner: owner, address: source)] != id, sessions.slots[slot]!.expires == nil {
            route(source, to: id)
        }
    }

    /// Seals this session's key's datagrams toward `address` with this session. Another key's route to the same
    /// address is left alone: the clash is counted.
    private mutating func route(_ address: SCTPSocketAddress, to id: UInt64) {
        let key = Route(owner: sessions[id]!.owner, address: address)
        if let previous = routes[key] {
            if previous != id { sessions[previous]?.addresses.removeAll { $0 == address } }
        } else {
            routeOwners[address, default: 0] += 1
            if routeOwners[address]! > 1 { statistics.addressClashes += 1 }
        }
        routes[key] = id
        if !sessions[id]!.addresses.contains(address) { sessions[id]!.addresses.append(address) }
        if sessions[id]!.addresses.count > configuration.addressesPerSession {
            let oldest = sessions[id]!.addresses.removeFirst()
            unroute(Route(owner: key.owner, address: oldest), from: id)
        }
    }

    /// Forgets a key's route to an address if session `id` holds it.
    private mutating func unroute(_ key: Route, from id: UInt64) {
        guard routes[key] == id else { return }
        routes[key] = nil
        routeOwners[key.address, default: 1] -= 1
        if routeOwners[key.address]! <= 0 { routeOwners[key.address] = nil }
    }

    /// Handles a HELLO; false when it did not authenticate (nothing was allocated or sent). The checks run cheapest
    /// and least trusting first: length and version, key id, tag; only an authenticated, fresh, new HELLO costs an
    /// X25519 exchange.
    private mutating func receiveHello(_ datagram: SCTPDatagram, clock: SecurityClock) -> Bool {
        let payload = datagram.payload
        if let version = payload.getInteger(at: payload.readerIndex + 1, as: UInt8.self),
            !configuration.versions.contains(version)
        {
            return receiveForeignHello(datagram, version: version, clock: clock)
        }
        // Versions 3 to 5 share the handshake's layout; the version decides the session's data layout.
        guard payload.readableBytes == SecureDatagram.helloLength,
            let hello = payload.getBytes(at: payload.readerIndex, length: SecureDatagram.helloLength),
            configuration.versions.contains(hello[1])
        else {
            statistics.droppedMalformed += 1
            return false
        }
        guard let (keyID, entry) = heldKey(of: hello) else { return false }
        typealias Offset = SecureDatagram.HelloOffset
        let expected = SecureDatagram.handshakeTag(
            key: entry.key, label: SecureDatagram.helloLabel, [hello[0..<Offset.tag]])
        guard SecureDatagram.tagsMatch(hello[Offset.tag...], expected) else {
            statistics.droppedBadTag += 1
            return false
        }
        // Authenticated from here on: every outcome is this key's own business.
        let clientRandom = hello[Offset.random..<Offset.publicKey]
        let clientPublicKey = hello[Offset.publicKey..<Offset.timestamp]
        let timestamp = Int64(
            bitPattern: hello[Offset.timestamp..<Offset.previousSession].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let previousSession = hello[Offset.previousSession..<Offset.tag].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard abs(timestamp - clock.unixSeconds) <= configuration.timestampWindow else {
            statistics.droppedStaleHello += 1
            return true
        }
        let window = configuration.timestampWindow
        keys[keyID]!.hellos.removeAll { abs($0.timestamp - clock.unixSeconds) > window }
        if let seen = keys[keyID]!.hellos.first(where: { $0.random == clientRandom }) {
            repeatHelloAck(seen.sessionID, to: datagram)
            return true
        }
        guard keys[keyID]!.hellos.count < configuration.hellosRememberedPerKey else {
            statistics.droppedTableFull += 1
            return true
        }
        // Before any session is evicted: a HELLO whose public key gives no usable secret changes nothing.
        let ephemeral = SecureDatagram.ephemeralKey(using: &random)
        guard let sharedSecret = SecureDatagram.sharedSecret(ephemeral, peer: clientPublicKey) else {
            statistics.droppedMalformed += 1
            return true
        }
        if keys[keyID]!.sessions.count >= configuration.sessionsPerKey,
            let evicted = keys[keyID]!.sessions.min(by: { sessions[$0]!.lastSeen < sessions[$1]!.lastSeen })
        {
            removeSession(evicted)
        }
        guard sessions.count < configuration.maxSessions else {
            statistics.droppedTableFull += 1
            return true
        }
        let version = hello[1]
        let layout = DataLayout(version: version)
        var sessionID: UInt64 = 0
        while sessionID == 0 || sessions[sessionID] != nil {
            // The low word, which the steering rule reads, names this shard; the rest stays random. A compact id
            // is that word alone.
            let drawn: UInt64 = random.next()
            let low = configuration.shard.steer(UInt32(truncatingIfNeeded: drawn))
            let high = layout == .full ? drawn & 0xFFFF_FFFF_0000_0000 : 0
            sessionID = high | UInt64(low)
        }
        let serverRandom = SecureDatagram.randomBytes(SecureDatagram.randomLength, using: &random)
        let continues = previousSession != 0 && sessions[previousSession]?.keyID == keyID
        var ack: [UInt8] = [
            SecureDatagram.Kind.helloAck.rawValue, version,
            continues ? SecureDatagram.HelloAckFlags.continuesSession : 0,
        ]
        ack.reserveCapacity(SecureDatagram.helloAckLength)
        appendBigEndian(sessionID, to: &ack)
        ack += serverRandom
        ack += ephemeral.publicKey.rawRepresentation
        ack += SecureDatagram.handshakeTag(key: entry.key, label: SecureDatagram.helloAckLabel, [hello[...], ack[...]])
        // `ephemeral` and `sharedSecret` end with this call: only the derived keys and the HELLO-ACK are kept.
        let sessionKeys = SecureDatagram.sessionKeys(
            key: entry.key, sharedSecret: sharedSecret, clientRandom: Array(clientRandom), serverRandom: serverRandom,
            sessionID: sessionID)
        var session = Session(
            cipher: SessionCipher(
                sessionID: sessionID, layout: layout, sendKey: sessionKeys.serverToClient,
                receiveKey: sessionKeys.clientToServer),
            keyID: keyID, owner: entry.owner, helloAck: ack, lastSeen: clock.monotonic)
        if continues { session.predecessor = previousSession }
        sessions[sessionID] = session
        scheduleCheck(sessionID)
        keys[keyID]!.sessions.append(sessionID)
        keys[keyID]!.hellos.append((clientRandom, timestamp, sessionID))
        statistics.handshakesCompleted += 1
        send(ack, answering: datagram)
        return true
    }

    /// A HELLO of a version this build does not speak. For a key the server holds, it answers VERSION (its
    /// versions, under a tag of that key over the whole HELLO: the server's word, and never larger than the HELLO)
    /// at most once a second per key, and reports it; for an unknown key id it stays silent, as for any scanner.
    /// The HELLO's own tag cannot be checked (its layout is another version's), so VERSION is all it ever gets.
    /// The key a HELLO names (bytes 2..<10, any version), if the server holds it; an unknown one is counted.
    private mutating func heldKey(of hello: [UInt8]) -> (id: UInt64, entry: KeyEntry)? {
        let keyID = hello[2..<10].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard let entry = keys[keyID] else {
            statistics.droppedUnknownKey += 1
            return nil
        }
        return (keyID, entry)
    }

    private mutating func receiveForeignHello(_ datagram: SCTPDatagram, version: UInt8, clock: SecurityClock) -> Bool {
        let payload = datagram.payload
        guard payload.readableBytes >= SecureDatagram.shortestForeignHello,
            payload.readableBytes <= SecureDatagram.helloLength * 4,
            let hello = payload.getBytes(at: payload.readerIndex, length: payload.readableBytes)
        else {
            statistics.droppedMalformed += 1
            return false
        }
        guard let (keyID, entry) = heldKey(of: hello) else { return false }
        statistics.versionMismatches += 1
        if let last = entry.lastVersionAnswer, clock.monotonic - last < .seconds(1) { return true }
        keys[keyID]!.lastVersionAnswer = clock.monotonic
        let versions = configuration.versions
        var answer: [UInt8] = [SecureDatagram.Kind.version.rawValue, versions.lowerBound, versions.upperBound]
        answer += SecureDatagram.handshakeTag(
            key: entry.key, label: SecureDatagram.versionLabel, [hello[...], answer[...]])
        events.append(.clientVersionMismatch(keyName: entry.name, clientVersion: version))
        send(answer, answering: datagram)
        return true
    }

    /// A HELLO seen before: answered again (its HELLO-ACK may have been lost) while the session is unconfirmed and
    /// the repeat budget lasts, else dropped as a replay.
    private mutating func repeatHelloAck(_ id: UInt64, to datagram: SCTPDatagram) {
        guard let session = sessions[id], !session.isConfirmed, session.helloAckRepeats < configuration.helloAckRepeats
        else {
            statistics.droppedReplay += 1
            return
        }
        sessions[id]!.helloAckRepeats += 1
        send(session.helloAck, answering: datagram)
    }

    private mutating func send(_ bytes: [UInt8], answering datagram: SCTPDatagram) {
        statistics.handshakesSent += 1
        outbox.append(
            SCTPDatagram(source: datagram.destination, destination: datagram.source, payload: ByteBuffer(bytes: bytes)))
    }

    // MARK: - Output

    /// The sealed form of an outgoing SCTP datagram, with the session of its owner's key that last authenticated a
    /// datagram from its destination; nil when that key has none. Only an unauthenticated (plaintext) association's
    /// datagrams leave in plaintext, and only when plaintext is allowed: an authenticated one never falls back.
    package mutating func seal(_ datagram: SCTPDatagram) -> SCTPDatagram? {
        if datagram.owner == .unauthenticated, configuration.allowPlaintext { return datagram }
        var output = ByteBufferAllocator().buffer(capacity: SecureDatagram.overhead + datagram.payload.readableBytes)
        guard seal(datagram, appendingTo: &output) != nil else { return nil }
        return SCTPDatagram(
            source: datagram.source, destination: datagram.destination, payload: output, owner: datagram.owner)
    }

    /// Seals an outgoing datagram onto the end of `output` (a driver's run of datagrams for one segmented write)
    /// and returns the bytes appended: a plaintext association's datagram, where allowed, as it is; nil (and
    /// `output` unchanged) when it may not go.
    package mutating func seal(_ datagram: SCTPDatagram, appendingTo output: inout ByteBuffer) -> Int? {
        guard datagram.owner != .unauthenticated else {
            if configuration.allowPlaintext {
                output.writeImmutableBuffer(datagram.payload)
                return datagram.payload.readableBytes
            }
            statistics.sealFailures += 1
            return nil
        }
        guard let slot = sealingSession(for: datagram)?.slot else {
            statistics.sealFailures += 1
            return nil
        }
        let start = output.writerIndex
        guard sessions.slots[slot]!.cipher.seal(datagram.payload, appendingTo: &output) else {
            statistics.sealFailures += 1
            return nil
        }
        let length = output.writerIndex - start
        statistics.recordSealed(length: length)
        return length
    }

    /// The bytes `seal(_:appendingTo:)` appends for `datagram` when it goes: what its session's layout makes of
    /// the packet, or the packet alone for a plaintext association's datagram. It finds the session `seal` then uses
    /// from the one-entry cache.
    package mutating func sealedLength(of datagram: SCTPDatagram) -> Int {
        guard datagram.owner != .unauthenticated else { return datagram.payload.readableBytes }
        guard let layout = sealingSession(for: datagram)?.layout else {
            return datagram.payload.readableBytes + SecureDatagram.overhead
        }
        return layout.sealedLength(of: datagram.payload)
    }

    /// Bytes the session that seals `owner`'s datagrams toward `destination` adds to each (all but a packed
    /// session's few whole ones): its layout's header and tag, less what a packed one leaves out. Nil for a
    /// plaintext owner, or when no session of the owner's key routes there.
    package mutating func sealOverhead(owner: SCTPOwner, toward destination: SCTPSocketAddress) -> SealingOverhead? {
        guard owner != .unauthenticated else { return nil }
        return sealingSession(for: Route(owner: owner, address: destination))?.layout.sealingOverhead
    }

    /// The session that seals `datagram` (its owner's key's route to the destination), its slot and its layout.
    private mutating func sealingSession(for datagram: SCTPDatagram) -> (slot: Int, layout: DataLayout)? {
        sealingSession(for: Route(owner: datagram.owner, address: datagram.destination))
    }

    /// The session `route` leads to, through the one-entry cache of the last route sealed for.
    private mutating func sealingSession(for route: Route) -> (slot: Int, layout: DataLayout)? {
        if let last = lastSealedRoute, last.route == route, last.generation == sessions.generation {
            return (last.slot, last.layout)
        }
        guard let id = routes[route], let slot = sessions.slot(of: id) else { return nil }
        let layout = sessions.slots[slot]!.cipher.layout
        lastSealedRoute = (route, slot, sessions.generation, layout)
        return (slot, layout)
    }

    /// Whether `pollTransmit` or `pollEvent` has anything: asked after every datagram, so the common answer (no)
    /// costs no Optional of either.
    package var hasOutput: Bool { !outbox.isEmpty || !events.isEmpty }

    /// HELLO-ACKs and VERSION answers to send.
    package mutating func pollTransmit() -> SCTPDatagram? {
        outbox.popFirst()
    }

    /// What the service must hear about: a client speaking another version.
    package mutating func pollEvent() -> DatagramSecurityEvent? {
        events.popFirst()
    }

    // MARK: - Timers

    package func nextDeadline() -> SCTPTime? {
        expiries.min?.time
    }

    /// Forgets sessions that expired, idled out or were never confirmed: only those whose check is due are looked
    /// at; one still in use is checked again at its new deadline.
    package mutating func handleTimeout(clock: SecurityClock) {
        let now = clock.monotonic
        while let first = expiries.min, first.time <= now {
            expiries.removeMin()
            guard let session = sessions[first.id], session.checkAt == first.time else { continue }
            if deadline(of: session) <= now {
                removeSession(first.id)
            } else {
                sessions[first.id]!.checkAt = nil
                scheduleCheck(first.id)
            }
        }
    }

    /// When a session is forgotten unless a datagram authenticates before: its grace period's end (a replaced
    /// session), else its idle or unconfirmed timeout from the last datagram.
    private func deadline(of session: Session) -> SCTPTime {
        let timeout = session.isConfirmed ? configuration.idleTimeout : configuration.unconfirmedTimeout
        let idle = session.lastSeen + timeout
        return session.expires.map { min($0, idle) } ?? idle
    }

    /// Puts session `id`'s check at its deadline, unless a pending one comes no later.
    private mutating func scheduleCheck(_ id: UInt64) {
        guard let session = sessions[id] else { return }
        let due = deadline(of: session)
        if let pending = session.checkAt, pending <= due { return }
        sessions[id]!.checkAt = due
        expiries.insert(Expiry(time: due, id: id))
    }

    private mutating func removeSession(_ id: UInt64) {
        guard let session = sessions[id] else { return }
        for address in session.addresses { unroute(Route(owner: session.owner, address: address), from: id) }
        sessions[id] = nil
        keys[session.keyID]?.sessions.removeAll { $0 == id }
    }
}

/// The server's sessions by id: ids map to slots of an array, so the per-datagram work reaches a session in place
/// through its slot. Through a `[UInt64: Session]` every update was Dictionary's modify accessor, whose coroutine
/// frames were allocated on each call (three allocations per sealed datagram), and every read copied the session.
package struct SessionTable {
    private var slotByID: [UInt64: Int] = [:]
    /// Sessions in their slots; nil for a free slot.
    fileprivate(set) var slots: [ServerDatagramSecurity.Session?] = []
    private var freeSlots: [Int] = []

    package var count: Int { slotByID.count }
    package var isEmpty: Bool { slotByID.isEmpty }

    /// Counts the sessions added and removed: a slot found at one generation is that session's while it lasts.
    private(set) var generation = 0

    /// The slot of session `id`, valid until a session is added or removed.
    func slot(of id: UInt64) -> Int? { slotByID[id] }

    subscript(id: UInt64) -> ServerDatagramSecurity.Session? {
        get { slotByID[id].flatMap { slots[$0] } }
        set {
            if let slot = slotByID[id] {
                slots[slot] = newValue
                if newValue == nil {
                    slotByID[id] = nil
                    freeSlots.append(slot)
                    generation &+= 1
                }
            } else if let newValue {
                let slot = freeSlots.popLast() ?? slots.count
                if slot == slots.count { slots.append(newValue) } else { slots[slot] = newValue }
                slotByID[id] = slot
                generation &+= 1
            }
        }
    }

    /// Every session with its id, in no particular order.
    var entries: [(key: UInt64, value: ServerDatagramSecurity.Session)] {
        slotByID.map { id, slot in (id, slots[slot]!) }
    }

    /// The ids of the sessions `isIncluded` accepts.
    func ids(where isIncluded: (ServerDatagramSecurity.Session) -> Bool) -> [UInt64] {
        slotByID.compactMap { id, slot in isIncluded(slots[slot]!) ? id : nil }
    }
}
