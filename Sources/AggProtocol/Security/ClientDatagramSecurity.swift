import Crypto
import NIOCore
import SCTPEngine

/// aggclient's side of the datagram layer, sans-IO: it runs the HELLO / HELLO-ACK handshake with the server
/// (retransmitting the HELLO with backoff), queues outgoing SCTP packets until the session exists, seals and opens
/// data datagrams, and rekeys after `rekeyAfterPackets` datagrams or `rekeyInterval`, keeping the previous session
/// open for `gracePeriod` so packets in flight are not lost. Every handshake (the first, a rebuilt HELLO, a rekey)
/// uses a fresh ephemeral X25519 key, forgotten once the session keys are derived. It offers this build's handshake
/// version and, when the server's VERSION answer names an older one both speak, falls back to it for good (each
/// session keeps the data layout of the version that made it). Time and randomness come from the caller.
package struct ClientDatagramSecurity {
    /// Tunables; the defaults suit real networks.
    package struct Configuration: Sendable {
        /// A new handshake starts once either direction of a session has carried this many datagrams.
        var rekeyAfterPackets: UInt64 = 1 << 30
        /// A new handshake starts once a session is this old.
        var rekeyInterval: SCTPDuration = .seconds(2 * 3600)
        /// How long the previous session still opens datagrams after a new one is up.
        var gracePeriod: SCTPDuration = .seconds(60)
        var helloRetransmitInitial: SCTPDuration = .milliseconds(250)
        /// One HELLO a second at most while the server does not answer: small (106 bytes), and a server that comes
        /// back is found within a second.
        var helloRetransmitMax: SCTPDuration = .seconds(1)
        /// When datagrams have been sent for this long without any authenticated datagram coming back, the client
        /// probes the server with a HELLO naming the current session: a live server answers it as a rekey, a
        /// restarted one as a new session (`DatagramSecurityEvent.serverLostSession`). It takes at least two
        /// unanswered datagrams: the last acknowledgement of a transfer is one datagram that rightly gets no
        /// answer, whereas SCTP answers anything else (DATA with SACK, HEARTBEAT with HEARTBEAT-ACK) within
        /// 200 ms, and retransmits what goes unanswered.
        var livenessTimeout: SCTPDuration = .milliseconds(1500)
        /// A HELLO older than this is rebuilt with a fresh timestamp rather than retransmitted.
        var helloLifetime: SCTPDuration = .seconds(30)
        /// SCTP packets held while the first handshake runs; more are dropped (SCTP retransmits them).
        var queueLimit = 256

        package init() {}
    }

    struct Session {
        var cipher: SessionCipher
        let established: SCTPTime
    }

    /// A HELLO awaiting its HELLO-ACK. Retransmissions resend the same bytes, so they carry the same ephemeral key
    /// and any of them may be the one answered.
    private struct PendingHello {
        let bytes: [UInt8]
        let key: SymmetricKey
        let clientRandom: [UInt8]
        /// The ephemeral X25519 private key whose public half the HELLO carries; it lives only as long as this
        /// pending HELLO, so it is gone once the session keys are derived (or the HELLO is abandoned).
        let ephemeral: Curve25519.KeyAgreement.PrivateKey
        let source: SCTPSocketAddress
        let destination: SCTPSocketAddress
        let created: SCTPTime
        var retransmitAt: SCTPTime
        var interval: SCTPDuration
        /// The session the HELLO names as previous (0: none).
        let previousSession: UInt64
    }

    let configuration: Configuration
    private var key: SymmetricKey
    private(set) var keyID: UInt64
    private(set) var current: Session?
    private(set) var previous: (session: Session, expires: SCTPTime)?
    private var pending: PendingHello?
    private var queue = CircularBuffer<SCTPDatagram>()
    private var outbox = CircularBuffer<SCTPDatagram>()
    private var lastRoute: (source: SCTPSocketAddress, destination: SCTPSocketAddress)?
    private var random: any RandomNumberGenerator
    /// The handshake version the next HELLO offers: this build's, until a server's VERSION answer names an older
    /// one both speak. Tests set it to play an older client.
    var helloVersion = SecureDatagram.version
    package private(set) var statistics = DatagramSecurityStatistics()
    /// The first datagram sealed since the last one opened: the server has not answered since then.
    private var unansweredSince: SCTPTime?
    /// Datagrams sealed since the last one opened.
    private var unansweredCount = 0
    private var events = CircularBuffer<DatagramSecurityEvent>()

    package init(
        key: PreSharedKey, configuration: Configuration = Configuration(), random: any RandomNumberGenerator
    ) {
        self.configuration = configuration
        self.key = SymmetricKey(data: key.key)
        self.keyID = SecureDatagram.keyID(for: key.key)
        self.random = random
    }

    /// Whether a handshake is under way.
    var isHandshaking: Bool { pending != nil }

    /// The bytes `seal` makes of `datagram`: what the current session's layout makes of its packet (the largest
    /// layout's overhead while there is no session, when nothing is sealed).
    package func sealedLength(of datagram: SCTPDatagram) -> Int {
        current?.cipher.layout.sealedLength(of: datagram.payload)
            ?? datagram.payload.readableBytes + SecureDatagram.overhead
    }

    /// Bytes the current session's layout adds to a packet (to all but a packed session's few whole ones: see
    /// `DataLayout.packed`); nil before the first handshake completes.
    package var sessionOverhead: SealingOverhead? { current?.cipher.layout.sealingOverhead }

    /// Datagrams held until the handshake completes.
    var queuedCount: Int { queue.count }

    // MARK: - Commands

    /// A new association starts: the next datagram triggers a fresh handshake (the server may have restarted and
    /// forgotten the session); the current session stays open for the grace period.
    package mutating func restart(now: SCTPTime) {
        if let current { previous = (current, now + configuration.gracePeriod) }
        current = nil
        pending = nil
        queue.removeAll()
    }

    /// Uses `key` from the next handshake on.
    package mutating func replaceKey(_ key: PreSharedKey) {
        self.key = SymmetricKey(data: key.key)
        keyID = SecureDatagram.keyID(for: key.key)
    }

    // MARK: - Output

    /// The sealed form of an outgoing SCTP datagram; nil while it waits for the handshake (or was dropped).
    package mutating func seal(_ datagram: SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        var output = ByteBufferAllocator().buffer(capacity: SecureDatagram.overhead + datagram.payload.readableBytes)
        guard seal(datagram, clock: clock, appendingTo: &output) != nil else { return nil }
        return SCTPDatagram(
            source: datagram.source, destination: datagram.destination, payload: output, owner: datagram.owner)
    }

    /// Seals an outgoing SCTP datagram onto the end of `output` (a driver's run of datagrams for one segmented
    /// write) and returns the bytes appended; nil, with `output` unchanged, while it waits for the handshake (or
    /// was dropped).
    package mutating func seal(
        _ datagram: SCTPDatagram, clock: SecurityClock, appendingTo output: inout ByteBuffer
    )
        -> Int?
    {
        lastRoute = (datagram.source, datagram.destination)
        // Only the counters are read (`if let current` would copy the session: its keys, its window).
        guard let sent = current?.cipher.sendCounter, let opened = current?.cipher.packetsOpened else {
            if queue.count < configuration.queueLimit {
                queue.append(datagram)
            } else {
                statistics.sealFailures += 1
            }
            if pending == nil { startHello(from: datagram.source, to: datagram.destination, clock: clock) }
            return nil
        }
        if pending == nil,
            sent >= configuration.rekeyAfterPackets || opened >= configuration.rekeyAfterPackets
                || isUnanswered(at: clock.monotonic)
        {
            startHello(from: datagram.source, to: datagram.destination, clock: clock)
        }
        if unansweredSince == nil { unansweredSince = clock.monotonic }
        unansweredCount += 1
        let start = output.writerIndex
        guard current?.cipher.seal(datagram.payload, appendingTo: &output) == true else {
            statistics.sealFailures += 1
            return nil
        }
        let length = output.writerIndex - start
        statistics.recordSealed(length: length)
        return length
    }

    /// Whether two or more datagrams have gone unanswered for `livenessTimeout`.
    private func isUnanswered(at now: SCTPTime) -> Bool {
        guard let deadline = livenessDeadline else { return false }
        return now >= deadline
    }

    /// When unanswered datagrams call for a probe, if they do.
    private var livenessDeadline: SCTPTime? {
        guard unansweredCount >= 2, let unansweredSince else { return nil }
        return unansweredSince + configuration.livenessTimeout
    }

    private mutating func answered() {
        unansweredSince = nil
        unansweredCount = 0
    }

    /// Whether `pollTransmit` or `pollEvent` has anything: asked after every datagram, so the common answer (no)
    /// costs no Optional of either.
    package var hasOutput: Bool { !outbox.isEmpty || !events.isEmpty }

    /// Handshake datagrams (HELLO) and datagrams released by a completed handshake.
    package mutating func pollTransmit() -> SCTPDatagram? {
        outbox.popFirst()
    }

    /// What the service must hear about: the server lost the session, or speaks another version.
    package mutating func pollEvent() -> DatagramSecurityEvent? {
        events.popFirst()
    }

    // MARK: - Input

    /// The SCTP datagram inside a received datagram, or nil when it was a handshake message or was dropped.
    package mutating func open(_ datagram: consuming SCTPDatagram, clock: SecurityClock) -> SCTPDatagram? {
        // The datagram's fields are read where they are: a copy of its payload is a retain and a release.
        guard let type = datagram.payload.getInteger(at: datagram.payload.readerIndex, as: UInt8.self) else {
            statistics.droppedMalformed += 1
            return nil
        }
        switch SecureDatagram.Kind(rawValue: type) {
        case .data, .compactData, .packedData:
            let layout = DataLayout(type: type)!
            guard datagram.payload.readableBytes > layout.overhead, let id = layout.sessionID(of: datagram.payload)
            else {
                statistics.droppedMalformed += 1
                return nil
            }
            let failure: SessionCipher.OpenFailure?
            if current?.cipher.sessionID == id, current?.cipher.layout.opens(layout) == true {
                failure = current!.cipher.open(inPlace: &datagram.payload)
            } else if let previous, previous.session.cipher.sessionID == id,
                previous.session.cipher.layout.opens(layout), clock.monotonic < previous.expires
            {
                failure = self.previous!.session.cipher.open(inPlace: &datagram.payload)
            } else {
                statistics.droppedUnknownSession += 1
                return nil
            }
            if let failure {
                statistics.count(failure)
                return nil
            }
            statistics.opened += 1
            answered()
            // A client's engine has one owner, the default one, whatever the datagram handed in said.
            datagram.owner = .unauthenticated
            datagram.integrityVerified = true  // The AEAD tag covered it: the engine skips the CRC32c.
            datagram.portsElided = layout == .packed
            return consume datagram
        case .helloAck:
            receiveHelloAck(datagram.payload, clock: clock)
            return nil
        case .version:
            receiveVersion(datagram.payload, clock: clock)
            return nil
        case .hello, nil:
            statistics.droppedMalformed += 1
            return nil
        }
    }

    // MARK: - Timers

    /// The next instant `handleTimeout` has work: a HELLO retransmission, the end of the grace period, a rekey.
    package func nextDeadline() -> SCTPTime? {
        var deadline: SCTPTime?
        func consider(_ time: SCTPTime) { deadline = min(deadline ?? time, time) }
        // Fields are read through optional chaining, not `if let`, which would copy the sessions (keys, windows).
        if let retransmitAt = pending?.retransmitAt { consider(retransmitAt) }
        if let expires = previous?.expires { consider(expires) }
        if pending == nil, let established = current?.established, lastRoute != nil {
            consider(established + configuration.rekeyInterval)
        }
        if pending == nil, current != nil, lastRoute != nil, let livenessDeadline { consider(livenessDeadline) }
        return deadline
    }

    package mutating func handleTimeout(clock: SecurityClock) {
        let now = clock.monotonic
        if let previous, now >= previous.expires { self.previous = nil }
        if var hello = pending, now >= hello.retransmitAt {
            if now - hello.created >= configuration.helloLifetime {
                startHello(from: hello.source, to: hello.destination, clock: clock)
            } else {
                hello.interval = min(hello.interval * 2, configuration.helloRetransmitMax)
                hello.retransmitAt = now + hello.interval
                pending = hello
                statistics.handshakesSent += 1
                outbox.append(
                    SCTPDatagram(
                        source: hello.source, destination: hello.destination, payload: ByteBuffer(bytes: hello.bytes)))
            }
        }
        if pending == nil, let current, let lastRoute,
            now >= current.established + configuration.rekeyInterval || isUnanswered(at: now)
        {
            startHello(from: lastRoute.source, to: lastRoute.destination, clock: clock)
        }
    }

    // MARK: - Handshake

    private mutating func startHello(
        from source: SCTPSocketAddress, to destination: SCTPSocketAddress, clock: SecurityClock
    ) {
        let clientRandom = SecureDatagram.randomBytes(SecureDatagram.randomLength, using: &random)
        let ephemeral = SecureDatagram.ephemeralKey(using: &random)
        var bytes: [UInt8] = [SecureDatagram.Kind.hello.rawValue, helloVersion]
        bytes.reserveCapacity(SecureDatagram.helloLength)
        appendBigEndian(keyID, to: &bytes)
        bytes += clientRandom
        bytes += ephemeral.publicKey.rawRepresentation
        appendBigEndian(UInt64(bitPattern: clock.unixSeconds), to: &bytes)
        let previousSession = current?.cipher.sessionID ?? 0
        appendBigEndian(previousSession, to: &bytes)
        bytes += SecureDatagram.handshakeTag(key: key, label: SecureDatagram.helloLabel, [bytes[...]])
        pending = PendingHello(
            bytes: bytes, key: key, clientRandom: clientRandom, ephemeral: ephemeral, source: source,
            destination: destination, created: clock.monotonic,
            retransmitAt: clock.monotonic + configuration.helloRetransmitInitial,
            interval: configuration.helloRetransmitInitial, previousSession: previousSession)
        statistics.handshakesSent += 1
        outbox.append(SCTPDatagram(source: source, destination: destination, payload: ByteBuffer(bytes: bytes)))
    }

    /// Completes the handshake with a HELLO-ACK that answers the pending HELLO in its version: its tag must verify
    /// (which also authenticates the server's ephemeral key) and the X25519 exchange must give a usable secret;
    /// anything else is dropped and the HELLO keeps being retransmitted.
    private mutating func receiveHelloAck(_ payload: ByteBuffer, clock: SecurityClock) {
        guard let hello = pending, payload.readableBytes == SecureDatagram.helloAckLength,
            let ack = payload.getBytes(at: payload.readerIndex, length: payload.readableBytes),
            ack[1] == hello.bytes[1]
        else {
            statistics.droppedMalformed += 1
            return
        }
        typealias Offset = SecureDatagram.HelloAckOffset
        let expected = SecureDatagram.handshakeTag(
            key: hello.key, label: SecureDatagram.helloAckLabel, [hello.bytes[...], ack[0..<Offset.tag]])
        guard SecureDatagram.tagsMatch(ack[Offset.tag...], expected) else {
            statistics.droppedBadTag += 1
            return
        }
        let serverPublicKey = ack[Offset.publicKey..<Offset.tag]
        guard let sharedSecret = SecureDatagram.sharedSecret(hello.ephemeral, peer: serverPublicKey) else {
            statistics.droppedMalformed += 1
            return
        }
        let sessionID = ack[Offset.sessionID..<Offset.random].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let layout = DataLayout(version: ack[1])
        // Authenticated, so the server's own mistake; still refused rather than trusted.
        guard layout == .full || sessionID <= UInt32.max else {
            statistics.droppedMalformed += 1
            return
        }
        let continues = ack[Offset.flags] & SecureDatagram.HelloAckFlags.continuesSession != 0
        let serverRandom = Array(ack[Offset.random..<Offset.publicKey])
        let keys = SecureDatagram.sessionKeys(
            key: hello.key, sharedSecret: sharedSecret, clientRandom: hello.clientRandom, serverRandom: serverRandom,
            sessionID: sessionID)
        if let current { previous = (current, clock.monotonic + configuration.gracePeriod) }
        current = Session(
            cipher: SessionCipher(
                sessionID: sessionID, layout: layout, sendKey: keys.clientToServer, receiveKey: keys.serverToClient),
            established: clock.monotonic)
        // Forgets the ephemeral private key: from here on nothing the client holds recreates the shared secret.
        pending = nil
        answered()
        statistics.handshakesCompleted += 1
        if hello.previousSession != 0, !continues { events.append(.serverLostSession) }
        while let datagram = queue.popFirst() {
            if let sealed = sealWithCurrent(datagram) { outbox.append(sealed) }
        }
    }

    /// A queued datagram sealed with the session just set up, for the outbox.
    private mutating func sealWithCurrent(_ datagram: SCTPDatagram) -> SCTPDatagram? {
        var output = ByteBufferAllocator().buffer(capacity: sealedLength(of: datagram))
        guard current?.cipher.seal(datagram.payload, appendingTo: &output) == true else {
            statistics.sealFailures += 1
            return nil
        }
        statistics.recordSealed(length: output.readableBytes)
        return SCTPDatagram(
            source: datagram.source, destination: datagram.destination, payload: output, owner: datagram.owner)
    }
}

extension ClientDatagramSecurity {
    /// A VERSION answer to the pending HELLO: the server speaks other versions. Its tag (under the client key, over
    /// the HELLO it answers) makes it the server's word; anything else is dropped like a forged HELLO-ACK. When the
    /// server speaks an older version this build speaks too, the client offers the highest such version from here
    /// on and sends a new HELLO at once; otherwise it reports the mismatch and keeps retransmitting.
    fileprivate mutating func receiveVersion(_ payload: ByteBuffer, clock: SecurityClock) {
        guard let hello = pending, payload.readableBytes == SecureDatagram.versionLength,
            let answer = payload.getBytes(at: payload.readerIndex, length: payload.readableBytes)
        else {
            statistics.droppedMalformed += 1
            return
        }
        let expected = SecureDatagram.handshakeTag(
            key: hello.key, label: SecureDatagram.versionLabel, [hello.bytes[...], answer[0..<3]])
        guard SecureDatagram.tagsMatch(answer[3...], expected), answer[1] <= answer[2] else {
            statistics.droppedBadTag += 1
            return
        }
        statistics.versionMismatches += 1
        let offered = hello.bytes[1]
        let common = min(answer[2], SecureDatagram.supportedVersions.upperBound)
        if common != offered, common >= max(answer[1], SecureDatagram.supportedVersions.lowerBound) {
            helloVersion = common
            startHello(from: hello.source, to: hello.destination, clock: clock)
            return
        }
        events.append(.versionMismatch(serverVersions: answer[1]...answer[2]))
    }
}

/// Appends `value` big-endian.
func appendBigEndian(_ value: UInt64, to bytes: inout [UInt8]) {
    for shift in stride(from: 56, through: 0, by: -8) {
        bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
    }
}
