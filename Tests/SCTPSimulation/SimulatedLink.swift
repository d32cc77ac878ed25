import NIOCore
import SCTPEngine

/// Where a NAT sits on a link, and which way it translates.
public enum LinkNAT {
    /// The NAT is at the link's entry: it rewrites the source of inside packets to its outside address and port.
    case outbound(SimulatedNAT)
    /// The NAT is at the link's exit: packets addressed to its outside address are mapped back to the inside host.
    case inbound(SimulatedNAT)
}

/// One direction of a path between two address sets: it owns the transmit queue, the impairments, a NAT if one
/// sits on it, and the counters tests read to see how much each path carried.
public final class SimulatedLink {
    /// A label for traces and failure messages.
    public let name: String
    public let sources: [SCTPIPAddress]
    public let destinations: [SCTPIPAddress]
    /// Changes apply to packets sent from then on.
    public var configuration: LinkConfiguration
    public let nat: LinkNAT?
    public internal(set) var counters = LinkCounters()

    /// A link that is down drops every packet offered to it and every packet still in flight on it.
    public var isUp: Bool = true {
        didSet {
            guard !isUp, oldValue else { return }
            // Everything queued or in flight is lost; the transmitter starts idle when the link returns.
            epoch &+= 1
            queue.removeAll()
            queuedBytes = 0
            busyUntil = .zero
            lastDelivery = .zero
        }
    }

    // MARK: - Transmit state

    var random: SCTPRandom
    /// Bumped each time the link goes down; a packet in flight from an earlier epoch is lost.
    var epoch: UInt64 = 0
    /// When the transmitter finishes the last admitted packet.
    private var busyUntil = SCTPTime.zero
    /// Admitted packets not yet fully serialised: finish time and size, oldest first.
    private var queue = CircularBuffer<(finish: SCTPTime, bytes: Int)>()
    private var queuedBytes = 0
    /// The latest in-order delivery time, so that jitter does not reorder when it must not.
    private var lastDelivery = SCTPTime.zero

    init(
        name: String, sources: [SCTPIPAddress], destinations: [SCTPIPAddress], configuration: LinkConfiguration,
        nat: LinkNAT?, seed: UInt64
    ) {
        self.name = name
        self.sources = sources
        self.destinations = destinations
        self.configuration = configuration
        self.nat = nat
        self.random = SCTPRandom(seed: seed)
    }

    /// Bytes waiting in the queue (including the packet being serialised) at `now`.
    public func queuedBytes(at now: SCTPTime) -> Int {
        var total = queuedBytes
        for entry in queue where entry.finish <= now { total -= entry.bytes }
        return total
    }

    /// The fate of one packet offered to the link.
    enum Admission {
        case dropped(DropReason)
        /// Delivered at `time`, and a second copy too if `duplicate`.
        case delivered(time: SCTPTime, duplicate: Bool)
    }

    /// Decides at send time what happens to a packet of `bytes` IP bytes, updating the queue and counters.
    func admit(bytes: Int, now: SCTPTime) -> Admission {
        counters.sentPackets += 1
        counters.sentBytes += bytes
        guard isUp else {
            counters.droppedByLinkDown += 1
            return .dropped(.linkDown)
        }
        guard bytes <= configuration.mtu else {
            counters.droppedByMTU += 1
            return .dropped(.mtu)
        }
        var departure = now
        if let rate = configuration.rateBitsPerSecond, rate > 0 {
            while let head = queue.first, head.finish <= now {
                queuedBytes -= head.bytes
                queue.removeFirst()
            }
            guard queuedBytes + bytes <= configuration.queueLimitBytes else {
                counters.droppedByQueue += 1
                return .dropped(.queue)
            }
            let start = max(now, busyUntil)
            // Rounded up, so a rate is never exceeded.
            let serialisation = (Int64(bytes) * 8 * 1_000_000_000 + rate - 1) / rate
            busyUntil = start + .nanoseconds(serialisation)
            queue.append((busyUntil, bytes))
            queuedBytes += bytes
            departure = busyUntil
        }
        if configuration.lossProbability > 0, random.unitInterval() < configuration.lossProbability {
            counters.droppedByLoss += 1
            return .dropped(.loss)
        }
        var arrival = departure + configuration.delay
        if configuration.jitter > .zero {
            arrival = arrival + .nanoseconds(random.below(configuration.jitter.nanoseconds + 1))
        }
        if configuration.reorderProbability > 0, random.unitInterval() < configuration.reorderProbability {
            counters.reordered += 1
            arrival = arrival + configuration.reorderDelay
        } else if configuration.jitterPreservesOrder {
            arrival = max(arrival, lastDelivery)
            lastDelivery = arrival
        }
        let duplicate =
            configuration.duplicateProbability > 0 && random.unitInterval() < configuration.duplicateProbability
        if duplicate { counters.duplicated += 1 }
        return .delivered(time: arrival, duplicate: duplicate)
    }
}

/// Why the network dropped a packet.
public enum DropReason: Sendable, Hashable, CustomStringConvertible {
    case loss, queue, mtu, linkDown
    /// No link from the source address to the destination address.
    case noRoute
    /// No host is attached at the destination address.
    case undeliverable
    case nat(NATDropReason)

    public var description: String {
        switch self {
        case .loss: return "loss"
        case .queue: return "queue full"
        case .mtu: return "larger than MTU"
        case .linkDown: return "link down"
        case .noRoute: return "no route"
        case .undeliverable: return "no host at destination"
        case .nat(let reason): return "NAT: \(reason)"
        }
    }
}

extension SCTPRandom {
    /// A uniform double in [0, 1), from the top 53 bits so it is the same on every platform.
    mutating func unitInterval() -> Double {
        Double(next() >> 11) * 0x1p-53
    }

    /// A uniform integer in [0, bound) for bound > 0 (Lemire's multiply-shift, bias below 2^-64 · bound).
    mutating func below(_ bound: Int64) -> Int64 {
        precondition(bound > 0)
        return Int64(next().multipliedFullWidth(by: UInt64(bound)).high)
    }
}
