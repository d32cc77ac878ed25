import SCTPEngine

/// How a simulated NAT behaves, in the terms of RFC 4787.
public struct NATConfiguration: Sendable, Equatable {
    /// Which outgoing packets share one mapping (RFC 4787 §4.1).
    public enum Mapping: Sendable, Equatable {
        /// One mapping per inside address and port, whatever the destination.
        case endpointIndependent
        /// One mapping per inside address and port and destination IP.
        case addressDependent
        /// One mapping per inside address and port and destination IP and port ("symmetric").
        case addressAndPortDependent
    }

    /// How a new mapping chooses its outside port.
    public enum PortAssignment: Sendable, Equatable {
        /// Keep the inside port if it is free on the outside (and, unless `reusesReleasedPorts`, was not used by a
        /// mapping that has since expired or been dropped); otherwise pick a random free one.
        case preserving
        /// A random port for every new mapping, never one this NAT has handed out before while others are free.
        case random
    }

    /// Which inbound packets a mapping lets through (RFC 4787 §5).
    public enum Filtering: Sendable, Equatable {
        /// Anyone may send to a mapped port ("full cone").
        case endpointIndependent
        /// Only IPs the inside host has sent to through this mapping.
        case addressDependent
        /// Only IP and port pairs the inside host has sent to through this mapping.
        case addressAndPortDependent
    }

    public var mapping: Mapping
    public var portAssignment: PortAssignment
    public var filtering: Filtering
    /// How long a mapping lives without outbound traffic; nil for forever.
    public var bindingTimeout: SCTPDuration?
    /// Whether inbound packets also keep a mapping alive (RFC 4787 REQ-6 makes that optional).
    public var inboundRefreshesBinding: Bool
    /// Whether a port freed by expiry or `rebind()` may be handed out again at once. Off by default, so that a
    /// flow whose mapping was lost visibly comes back on a new port; on models NATs (Linux conntrack with
    /// port preservation) that give a returning flow its old port.
    public var reusesReleasedPorts: Bool
    /// Outside ports to allocate from.
    public var portRange: ClosedRange<UInt16>

    public init(
        mapping: Mapping = .endpointIndependent,
        portAssignment: PortAssignment = .preserving,
        filtering: Filtering = .addressAndPortDependent,
        bindingTimeout: SCTPDuration? = .seconds(120),
        inboundRefreshesBinding: Bool = false,
        reusesReleasedPorts: Bool = false,
        portRange: ClosedRange<UInt16> = 1024...65535
    ) {
        self.mapping = mapping
        self.portAssignment = portAssignment
        self.filtering = filtering
        self.bindingTimeout = bindingTimeout
        self.inboundRefreshesBinding = inboundRefreshesBinding
        self.reusesReleasedPorts = reusesReleasedPorts
        self.portRange = portRange
    }

    /// A home router: endpoint-independent mapping that keeps ports, address-and-port-dependent filtering.
    public static let portPreserving = NATConfiguration()
    /// A symmetric NAT: a new random port for every (inside address, inside port, destination).
    public static let symmetric = NATConfiguration(mapping: .addressAndPortDependent, portAssignment: .random)
    /// Endpoint-independent mapping with random ports and no filtering beyond an existing mapping.
    public static let fullCone = NATConfiguration(
        mapping: .endpointIndependent, portAssignment: .random, filtering: .endpointIndependent)
}

/// Why a NAT dropped a packet.
public enum NATDropReason: Sendable, Hashable, CustomStringConvertible {
    /// Nothing was ever mapped at that outside port.
    case unsolicited
    /// The mapping timed out or was dropped by `rebind()`.
    case expired
    /// A mapping exists but its filter does not admit the sender.
    case filtered
    /// No free outside port.
    case portsExhausted

    public var description: String {
        switch self {
        case .unsolicited: return "unsolicited"
        case .expired: return "mapping expired"
        case .filtered: return "filtered"
        case .portsExhausted: return "no free port"
        }
    }
}

/// A NAT between private inside addresses and one outside address: it keeps mappings from inside address and
/// port to outside port, rewrites sources on the way out and destinations on the way back, expires idle mappings
/// and filters unsolicited packets. Place it on links with `LinkNAT`.
public final class SimulatedNAT {
    /// Counts of what the NAT did, for tests.
    public struct Counters: Sendable, Equatable {
        public var translatedOutbound = 0
        public var translatedInbound = 0
        public var mappingsCreated = 0
        public var mappingsExpired = 0
        public var droppedUnsolicited = 0
        public var droppedExpired = 0
        public var droppedFiltered = 0
        public var droppedPortsExhausted = 0
        public init() {}
    }

    /// One live mapping, as tests may inspect it.
    public struct Binding: Sendable, Equatable {
        public var inside: SCTPSocketAddress
        public var outside: SCTPSocketAddress
        public var lastUsed: SCTPTime
    }

    private struct MappingKey: Hashable {
        var inside: SCTPSocketAddress
        var remoteIP: SCTPIPAddress?
        var remotePort: UInt16?
    }

    private struct Mapping {
        var key: MappingKey
        var outsidePort: UInt16
        var lastUsed: SCTPTime
        /// Remote endpoints the inside host has sent to, for filtering.
        var permittedIPs: Set<SCTPIPAddress> = []
        var permitted: Set<SCTPSocketAddress> = []
    }

    public let name: String
    public let outsideAddress: SCTPIPAddress
    public var configuration: NATConfiguration
    public private(set) var counters = Counters()

    private var random: SCTPRandom
    private var mappingsByKey: [MappingKey: UInt16] = [:]
    private var mappingsByPort: [UInt16: Mapping] = [:]
    /// Ports handed out before and since released: a random NAT avoids them so a new mapping is visibly new.
    private var retiredPorts: Set<UInt16> = []

    public init(
        name: String = "nat", outsideAddress: SCTPIPAddress, configuration: NATConfiguration = .portPreserving,
        seed: UInt64 = 0x4E41_54
    ) {
        self.name = name
        self.outsideAddress = outsideAddress
        self.configuration = configuration
        self.random = SCTPRandom(seed: seed)
    }

    /// The live mappings at `now`, ordered by outside port.
    public func bindings(at now: SCTPTime) -> [Binding] {
        mappingsByPort.values.filter { !isExpired($0, now: now) }.sorted { $0.outsidePort < $1.outsidePort }.map {
            Binding(
                inside: $0.key.inside, outside: SCTPSocketAddress(ip: outsideAddress, port: $0.outsidePort),
                lastUsed: $0.lastUsed)
        }
    }

    /// Forgets every mapping at once, as a NAT reboot or a carrier NAT rebinding does: replies to old mappings
    /// are dropped and the next outgoing packet of each flow gets a new mapping.
    public func rebind() {
        for port in mappingsByPort.keys { retiredPorts.insert(port) }
        counters.mappingsExpired += mappingsByPort.count
        mappingsByPort.removeAll()
        mappingsByKey.removeAll()
    }

    // MARK: - Translation

    /// Rewrites the source of an outgoing packet, creating or refreshing its mapping.
    func translateOutbound(_ datagram: inout SCTPDatagram, now: SCTPTime) -> NATDropReason? {
        let key = mappingKey(inside: datagram.source, remote: datagram.destination)
        var port: UInt16
        if let existing = mappingsByKey[key], let mapping = mappingsByPort[existing], !isExpired(mapping, now: now) {
            port = existing
        } else {
            if let stale = mappingsByKey[key] { expire(port: stale) }
            guard let fresh = allocatePort(preferred: datagram.source.port, now: now) else {
                counters.droppedPortsExhausted += 1
                return .portsExhausted
            }
            port = fresh
            mappingsByKey[key] = port
            mappingsByPort[port] = Mapping(key: key, outsidePort: port, lastUsed: now)
            counters.mappingsCreated += 1
        }
        mappingsByPort[port]!.lastUsed = now
        mappingsByPort[port]!.permittedIPs.insert(datagram.destination.ip)
        mappingsByPort[port]!.permitted.insert(datagram.destination)
        datagram.source = SCTPSocketAddress(ip: outsideAddress, port: port)
        counters.translatedOutbound += 1
        return nil
    }

    /// Rewrites the destination of an incoming packet back to the inside host, or says why it must be dropped.
    func translateInbound(_ datagram: inout SCTPDatagram, now: SCTPTime) -> NATDropReason? {
        let port = datagram.destination.port
        guard datagram.destination.ip == outsideAddress, let mapping = mappingsByPort[port] else {
            if retiredPorts.contains(port) {
                counters.droppedExpired += 1
                return .expired
            }
            counters.droppedUnsolicited += 1
            return .unsolicited
        }
        if isExpired(mapping, now: now) {
            expire(port: port)
            counters.droppedExpired += 1
            return .expired
        }
        let admitted: Bool
        switch configuration.filtering {
        case .endpointIndependent: admitted = true
        case .addressDependent: admitted = mapping.permittedIPs.contains(datagram.source.ip)
        case .addressAndPortDependent: admitted = mapping.permitted.contains(datagram.source)
        }
        guard admitted else {
            counters.droppedFiltered += 1
            return .filtered
        }
        if configuration.inboundRefreshesBinding { mappingsByPort[port]!.lastUsed = now }
        datagram.destination = mapping.key.inside
        counters.translatedInbound += 1
        return nil
    }

    // MARK: - Mappings

    private func mappingKey(inside: SCTPSocketAddress, remote: SCTPSocketAddress) -> MappingKey {
        switch configuration.mapping {
        case .endpointIndependent: return MappingKey(inside: inside, remoteIP: nil, remotePort: nil)
        case .addressDependent: return MappingKey(inside: inside, remoteIP: remote.ip, remotePort: nil)
        case .addressAndPortDependent: return MappingKey(inside: inside, remoteIP: remote.ip, remotePort: remote.port)
        }
    }

    private func isExpired(_ mapping: Mapping, now: SCTPTime) -> Bool {
        guard let timeout = configuration.bindingTimeout else { return false }
        return now - mapping.lastUsed >= timeout
    }

    private func expire(port: UInt16) {
        guard let mapping = mappingsByPort.removeValue(forKey: port) else { return }
        if mappingsByKey[mapping.key] == port { mappingsByKey.removeValue(forKey: mapping.key) }
        retiredPorts.insert(port)
        counters.mappingsExpired += 1
    }

    /// A free outside port: the preferred one when preserving and free (and not retired, unless released ports
    /// may be reused), else random, avoiding retired ports while fresh ones remain. Expired mappings found in the way are reclaimed.
    private func allocatePort(preferred: UInt16, now: SCTPTime) -> UInt16? {
        func isFree(_ port: UInt16) -> Bool {
            guard let mapping = mappingsByPort[port] else { return true }
            if isExpired(mapping, now: now) {
                expire(port: port)
                return true
            }
            return false
        }
        let range = configuration.portRange
        if configuration.portAssignment == .preserving, range.contains(preferred), isFree(preferred),
            configuration.reusesReleasedPorts || !retiredPorts.contains(preferred)
        {
            return preferred
        }
        let size = Int64(range.upperBound) - Int64(range.lowerBound) + 1
        for avoidRetired in [true, false] {
            for _ in 0..<64 {
                let port = UInt16(Int64(range.lowerBound) + random.below(size))
                if avoidRetired && retiredPorts.contains(port) { continue }
                if isFree(port) { return port }
            }
        }
        for port in range where isFree(port) { return port }
        return nil
    }
}
