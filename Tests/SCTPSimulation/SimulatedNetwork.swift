import NIOCore
import SCTPEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A deterministic network in virtual time: it owns the clock, the hosts attached at IP addresses, the links
/// between them (with NATs on them) and the packets in flight, and runs hosts' inputs and timers in time order.
///
/// Routing is explicit: a datagram from IP `S` to IP `D` takes the link added for `S → D`; with none it is dropped
/// as `noRoute`. A NAT on a link rewrites sources as packets enter (`LinkNAT.outbound`) or maps destinations back
/// as packets leave (`LinkNAT.inbound`), so the reply path of a NATed host is a link to the NAT's outside address.
///
/// Everything random draws from generators seeded from `seed`, so one seed gives one run. Set `AGG_SIM_PCAP` to a
/// directory to capture every delivered packet to `<dir>/<name>.pcap` (and, with `AGG_SIM_PCAP_DROPS=1`, every
/// dropped one to `<dir>/<name>.drops.pcap`).
///
/// A client with two uplinks, each behind its own NAT, talking to a server with two addresses:
///
///     let network = SimulatedNetwork(seed: 1, name: "two-paths")
///     network.attach(clientHost, at: c1, c2)
///     network.attach(serverHost, at: s1, s2)
///     let nat1 = SimulatedNAT(outsideAddress: n1, configuration: .portPreserving)
///     let nat2 = SimulatedNAT(outsideAddress: n2, configuration: .symmetric, seed: 2)
///     let wifi = LinkConfiguration(rateBitsPerSecond: 50_000_000, delay: .milliseconds(10))
///     let lte = LinkConfiguration(rateBitsPerSecond: 20_000_000, delay: .milliseconds(40), lossProbability: 0.01)
///     let (up1, down1) = network.addBidirectionalLink(between: c1, and: s1, wifi, nat: nat1)
///     let (up2, down2) = network.addBidirectionalLink(between: c2, and: s2, lte, nat: nat2)
///     try network.runUntil({ serverHost.received == total }, timeout: .seconds(60))
///     // up1.counters.deliveredPayloadBytes and up2.counters… show how each path was used.
public final class SimulatedNetwork {
    /// One delivery, for comparing runs.
    public struct TraceEntry: Sendable, Hashable, CustomStringConvertible {
        public var time: SCTPTime
        public var link: String
        public var source: SCTPSocketAddress
        public var destination: SCTPSocketAddress
        public var payloadLength: Int
        /// FNV-1a of the payload.
        public var payloadHash: UInt64

        public var description: String {
            "\(time) \(link) \(source) -> \(destination) \(payloadLength)B #\(String(payloadHash, radix: 16))"
        }
    }

    /// Drops that belong to no link.
    public struct Counters: Sendable, Equatable {
        /// Datagrams whose source and destination IPs had no link.
        public var droppedNoRoute = 0
        public init() {}
    }

    public let name: String
    public let seed: UInt64
    /// The virtual clock. It only moves forward, inside `run`.
    public private(set) var now: SCTPTime
    /// More events than this at one instant is a livelock.
    public var maxEventsPerInstant = 100_000
    /// More steps than this in one call of `run` fails the run.
    public var maxStepsPerRun = 50_000_000
    public private(set) var links: [SimulatedLink] = []
    public private(set) var counters = Counters()

    /// When true, every delivery is appended to `trace`.
    public var recordsTrace = false
    public private(set) var trace: [TraceEntry] = []
    /// Called for every delivery, with the datagram as the host receives it.
    public var onDelivery: ((SCTPDatagram, SimulatedLink, SCTPTime) -> Void)?
    /// Called for every drop, with the datagram as it was when dropped.
    public var onDrop: ((SCTPDatagram, DropReason, SimulatedLink?, SCTPTime) -> Void)?
    /// Receives every delivered packet as it was on the wire.
    public var capture: PcapWriter?
    /// Receives every dropped packet.
    public var dropCapture: PcapWriter?

    private struct HostEntry {
        let host: any SimulatedHost
        let addresses: [SCTPIPAddress]
    }

    private struct RouteKey: Hashable {
        var source: SCTPIPAddress
        var destination: SCTPIPAddress
    }

    private struct InFlight {
        var link: Int
        var epoch: UInt64
        var datagram: SCTPDatagram
    }

    private enum Event {
        case delivery(InFlight)
        case action(() -> Void)
    }

    private var hosts: [HostEntry] = []
    private var hostByIP: [SCTPIPAddress: Int] = [:]
    private var routes: [RouteKey: Int] = [:]
    private var events = EventHeap<Event>()
    private var instant = SCTPTime.zero
    private var eventsAtInstant = 0

    public init(seed: UInt64 = 1, name: String = "simulation", start: SCTPTime = .zero) {
        self.seed = seed
        self.name = name
        self.now = start
        self.instant = start
        if let directory = getenv("AGG_SIM_PCAP").map({ String(cString: $0) }), !directory.isEmpty {
            _ = mkdir(directory, 0o755)
            let base = directory + "/" + Self.fileName(for: name)
            capture = try? PcapWriter(path: base + ".pcap")
            if let drops = getenv("AGG_SIM_PCAP_DROPS"), String(cString: drops) == "1" {
                dropCapture = try? PcapWriter(path: base + ".drops.pcap")
            }
        }
    }

    /// Flushes any capture files.
    public func flushCaptures() throws {
        try capture?.flush()
        try dropCapture?.flush()
    }

    // MARK: - Topology

    /// Attaches `host` at `addresses`: datagrams to those IPs are handed to it.
    public func attach(_ host: any SimulatedHost, at addresses: [SCTPIPAddress]) {
        for address in addresses {
            precondition(hostByIP[address] == nil, "\(address) already has a host")
            hostByIP[address] = hosts.count
        }
        hosts.append(HostEntry(host: host, addresses: addresses))
    }

    public func attach(_ host: any SimulatedHost, at addresses: SCTPIPAddress...) {
        attach(host, at: addresses)
    }

    /// Adds one directed link carrying every datagram from any of `sources` to any of `destinations`; they share
    /// its queue and counters. Each (source, destination) pair may have only one link.
    @discardableResult
    public func addLink(
        from sources: [SCTPIPAddress], to destinations: [SCTPIPAddress],
        _ configuration: LinkConfiguration = .ideal, name: String? = nil,
        nat: LinkNAT? = nil
    ) -> SimulatedLink {
        let index = links.count
        let linkName =
            name ?? "\(sources.map(\.description).joined(separator: ","))->"
            + destinations.map(\.description).joined(separator: ",")
        let link = SimulatedLink(
            name: linkName, sources: sources, destinations: destinations,
            configuration: configuration, nat: nat,
            seed: seed &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
        for source in sources {
            for destination in destinations {
                let key = RouteKey(source: source, destination: destination)
                precondition(routes[key] == nil, "a link from \(source) to \(destination) already exists")
                routes[key] = index
            }
        }
        links.append(link)
        return link
    }

    @discardableResult
    public func addLink(
        from source: SCTPIPAddress, to destination: SCTPIPAddress,
        _ configuration: LinkConfiguration = .ideal, name: String? = nil,
        nat: LinkNAT? = nil
    ) -> SimulatedLink {
        addLink(from: [source], to: [destination], configuration, name: name, nat: nat)
    }

    /// Adds a link each way between `a` and `b` with the same configuration. With a NAT, `a` is inside it: the
    /// forward link rewrites `a`'s packets to the NAT's outside address and the reverse link runs from `b` to
    /// that outside address, mapping replies back to `a`.
    @discardableResult
    public func addBidirectionalLink(
        between a: SCTPIPAddress, and b: SCTPIPAddress,
        _ configuration: LinkConfiguration = .ideal, name: String? = nil,
        nat: SimulatedNAT? = nil
    ) -> (forward: SimulatedLink, reverse: SimulatedLink) {
        let label = name ?? "\(a)<->\(b)"
        guard let nat else {
            return (
                addLink(from: a, to: b, configuration, name: label + ">"),
                addLink(from: b, to: a, configuration, name: label + "<")
            )
        }
        return (
            addLink(from: a, to: b, configuration, name: label + ">", nat: .outbound(nat)),
            addLink(from: b, to: nat.outsideAddress, configuration, name: label + "<", nat: .inbound(nat))
        )
    }

    /// The link a datagram from `source` to `destination` takes.
    public func link(from source: SCTPIPAddress, to destination: SCTPIPAddress) -> SimulatedLink? {
        routes[RouteKey(source: source, destination: destination)].map { links[$0] }
    }

    // MARK: - Inputs from tests

    /// Sends `datagram` at the current time as if a host had transmitted it.
    public func send(_ datagram: SCTPDatagram) {
        var datagram = datagram
        guard let index = routes[RouteKey(source: datagram.source.ip, destination: datagram.destination.ip)] else {
            counters.droppedNoRoute += 1
            drop(datagram, .noRoute, link: nil)
            return
        }
        let link = links[index]
        if case .outbound(let nat) = link.nat, let reason = nat.translateOutbound(&datagram, now: now) {
            link.counters.sentPackets += 1
            link.counters.sentBytes += PacketHeaders.ipPacketLength(of: datagram)
            link.counters.droppedByNAT += 1
            drop(datagram, .nat(reason), link: link)
            return
        }
        switch link.admit(bytes: PacketHeaders.ipPacketLength(of: datagram), now: now) {
        case .dropped(let reason):
            drop(datagram, reason, link: link)
        case .delivered(let time, let duplicate):
            let packet = InFlight(link: index, epoch: link.epoch, datagram: datagram)
            events.push(.delivery(packet), at: time)
            if duplicate { events.push(.delivery(packet), at: time) }
        }
    }

    /// Runs `action` at virtual time `time` (or now, if that has passed), between deliveries.
    public func schedule(at time: SCTPTime, _ action: @escaping () -> Void) {
        events.push(.action(action), at: max(time, now))
    }

    public func schedule(after delay: SCTPDuration, _ action: @escaping () -> Void) {
        schedule(at: now + delay, action)
    }

    /// Sends everything every host has queued, at the current time. Call it after giving a host a command.
    public func drainTransmits() throws {
        for index in hosts.indices { try drain(hosts[index].host) }
    }

    // MARK: - Running

    /// Runs until virtual time `end`; the clock ends at `end`.
    public func run(until end: SCTPTime) throws {
        _ = try runLoop(until: end, stopWhen: { false })
    }

    public func run(for duration: SCTPDuration) throws {
        try run(until: now + duration)
    }

    /// Runs until `condition` holds, checked before and after every event, and returns the time it first held.
    /// Throws `SimulationError.conditionTimedOut` if it still does not hold after `timeout`.
    @discardableResult
    public func runUntil(_ condition: () -> Bool, timeout: SCTPDuration) throws -> SCTPTime {
        let end = now + timeout
        if try runLoop(until: end, stopWhen: condition) { return now }
        throw SimulationError.conditionTimedOut(at: now)
    }

    /// The loop: take the earliest of the next in-flight event and the earliest host deadline, move the clock
    /// there and process it, then drain transmits. Returns true if `stopWhen` became true.
    private func runLoop(until end: SCTPTime, stopWhen: () -> Bool) throws -> Bool {
        try drainTransmits()
        if stopWhen() { return true }
        var steps = 0
        while true {
            let deadline = earliestDeadline()
            let next = min(events.minimumTime ?? .distantFuture, deadline ?? .distantFuture)
            guard next <= end, next != .distantFuture else { break }
            steps += 1
            guard steps <= maxStepsPerRun else {
                throw SimulationError.stepBudgetExceeded(at: now, steps: steps, limit: maxStepsPerRun)
            }
            if next > now { now = next }
            if let (_, event) = events.popIfDue(at: now) {
                try countEvent()
                switch event {
                case .delivery(let packet): try deliver(packet)
                case .action(let action):
                    action()
                    try drainTransmits()
                }
            } else {
                for entry in hosts {
                    guard let due = entry.host.nextDeadline(), due <= now else { continue }
                    try countEvent()
                    entry.host.handleTimeout(now: now)
                    try drain(entry.host)
                }
            }
            if stopWhen() { return true }
        }
        if end > now, end != .distantFuture { now = end }
        return false
    }

    private func earliestDeadline() -> SCTPTime? {
        var earliest: SCTPTime?
        for entry in hosts {
            if let deadline = entry.host.nextDeadline(), earliest.map({ deadline < $0 }) ?? true {
                earliest = deadline
            }
        }
        return earliest
    }

    private func countEvent() throws {
        if now != instant {
            instant = now
            eventsAtInstant = 0
        }
        eventsAtInstant += 1
        if eventsAtInstant > maxEventsPerInstant {
            throw SimulationError.livelock(at: now, events: eventsAtInstant, limit: maxEventsPerInstant)
        }
    }

    private func drain(_ host: any SimulatedHost) throws {
        while let datagram = host.pollTransmit() {
            try countEvent()
            send(datagram)
        }
    }

    private func deliver(_ packet: InFlight) throws {
        let link = links[packet.link]
        var datagram = packet.datagram
        guard link.isUp, link.epoch == packet.epoch else {
            link.counters.droppedByLinkDown += 1
            drop(datagram, .linkDown, link: link)
            return
        }
        capture?.write(datagram, at: now)
        if case .inbound(let nat) = link.nat, let reason = nat.translateInbound(&datagram, now: now) {
            link.counters.droppedByNAT += 1
            drop(packet.datagram, .nat(reason), link: link)
            return
        }
        guard let hostIndex = hostByIP[datagram.destination.ip] else {
            link.counters.droppedUndeliverable += 1
            drop(datagram, .undeliverable, link: link)
            return
        }
        link.counters.deliveredPackets += 1
        link.counters.deliveredBytes += PacketHeaders.ipPacketLength(of: datagram)
        link.counters.deliveredPayloadBytes += datagram.payload.readableBytes
        if recordsTrace {
            trace.append(
                TraceEntry(
                    time: now, link: link.name, source: datagram.source, destination: datagram.destination,
                    payloadLength: datagram.payload.readableBytes, payloadHash: Self.fnv1a(datagram.payload)))
        }
        onDelivery?(datagram, link, now)
        let host = hosts[hostIndex].host
        host.handle(datagram, now: now)
        try drainTransmits()
    }

    private func drop(_ datagram: SCTPDatagram, _ reason: DropReason, link: SimulatedLink?) {
        dropCapture?.write(datagram, at: now)
        onDrop?(datagram, reason, link, now)
    }

    // MARK: - Helpers

    static func fnv1a(_ buffer: ByteBuffer) -> UInt64 {
        buffer.withUnsafeReadableBytes { bytes in
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
            }
            return hash
        }
    }

    static func fileName(for name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        let cleaned = String(name.map { allowed.contains($0) ? $0 : "_" })
        return cleaned.isEmpty ? "simulation" : cleaned
    }
}
