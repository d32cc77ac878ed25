import Testing

@testable import SCTPEngine

extension Components {
    /// `OutstandingData` counts miss indications by walking only the holes between a SACK's blocks; the old walk over
    /// every chunk below the highest reported one is kept as the reference. On random sends, retransmissions, T3-rtx
    /// expiries, abandonments and SACKs (blocks unsorted, overlapping, out of range, NR mixed in), both must leave
    /// every chunk and every SACK outcome the same.
    @Suite struct MissIndicationWalkTests {
        static let policies: [(String, OutstandingData.FastRetransmitPolicy)] = [
            ("classic", .init()),
            ("split fast retransmit", .init(splitFastRetransmit: true)),
            ("split fast retransmit and DAC", .init(splitFastRetransmit: true, delayedAckForCMT: true)),
            ("classic, reneging detected", .init(detectsReneging: true)),
            ("split fast retransmit, reneging detected", .init(splitFastRetransmit: true, detectsReneging: true)),
        ]

        @Test(arguments: 0..<policies.count)
        func holesWalkMatchesTheWalkOverEveryChunk(policyIndex: Int) {
            let (name, policy) = Self.policies[policyIndex]
            var fastRetransmits = 0
            var sacksWithHoles = 0
            for seed in UInt64(1)...12 {
                var rng = SCTPRandom(seed: seed &* 7919 &+ UInt64(policyIndex))
                let initial = TSN(UInt32.max - 200)  // wraps around during the run
                var holes = OutstandingData(initialTSN: initial, policy: policy)
                var reference = OutstandingData(initialTSN: initial, policy: policy)
                reference.missIndicationWalk = .everyChunk
                var clock = FakeClock()
                for step in 0..<250 {
                    let op = RandomStep.make(count: holes.count, cumulative: holes.cumulativeTSNAck, using: &rng)
                    op.apply(to: &holes, now: clock.now)
                    op.apply(to: &reference, now: clock.now)
                    clock.advance(.milliseconds(Int64.random(in: 1...20, using: &rng)))
                    let sack = RandomStep.sack(count: holes.count, cumulative: holes.cumulativeTSNAck, using: &rng)
                    if !sack.gapAckBlocks.isEmpty || !sack.nrGapAckBlocks.isEmpty { sacksWithHoles += 1 }
                    let recovery = (Bool.random(using: &rng), Bool.random(using: &rng))
                    let inRecovery: (PathID) -> Bool = { $0 == PathID(1) ? recovery.0 : recovery.1 }
                    let a = holes.handleSack(sack, now: clock.now, isInFastRecovery: inRecovery)
                    let b = reference.handleSack(sack, now: clock.now, isInFastRecovery: inRecovery)
                    #expect(
                        Self.summary(a) == Self.summary(b), "\(name), seed \(seed), step \(step): SACK outcomes differ")
                    #expect(
                        Self.chunks(holes) == Self.chunks(reference), "\(name), seed \(seed), step \(step): chunks differ")
                    fastRetransmits += a.paths.filter(\.hasNewFastRetransmits).count
                }
            }
            // The runs must reach the code under test: SACKs with holes, and chunks pushed to fast retransmission.
            #expect(sacksWithHoles > 1000)
            #expect(fastRetransmits > 50)
        }

        static func summary(_ outcome: OutstandingData.SackOutcome) -> String {
            let paths = outcome.paths.map {
                "\($0.path) acked \($0.bytesAcked) flight \($0.flightSize) fr \($0.hasNewFastRetransmits)"
                    + " point \($0.ackPoint) advanced \($0.pseudoCumulativeAckAdvanced)"
            }
            return "\(outcome.disposition) fr \(outcome.fastRetransmitBytes) cum \(outcome.cumulativeTSNAckAdvanced) "
                + "rwnd \(outcome.peerReceiverWindow) " + paths.joined(separator: "; ")
        }

        static func chunks(_ queue: OutstandingData) -> [String] {
            var tsn = queue.cumulativeTSNAck.next
            var result: [String] = []
            for _ in 0..<queue.count {
                let item = queue.item(for: tsn)!
                result.append(
                    "\(tsn) \(item.state) miss \(item.missIndications) marked \(item.isMarkedForRetransmission) "
                        + "fr \(item.wasFastRetransmitted) flight \(item.isInFlight) \(item.path)")
                tsn = tsn.next
            }
            return result + ["flight \(queue.totalFlightSize) unacked \(queue.unackedBytes)"]
        }
    }

    /// One random step before a SACK, applied alike to both queues.
    private enum RandomStep {
        case send([PathID])
        case retransmit(count: Int, to: PathID)
        case expire(PathID)
        case abandon(TSN)

        static func make(count: Int, cumulative: TSN, using rng: inout SCTPRandom) -> RandomStep {
            let path = PathID(Int.random(in: 1...2, using: &rng))
            switch Int.random(in: 0..<20, using: &rng) {
            case 0..<12:
                let paths = (0..<Int.random(in: 1...8, using: &rng)).map { _ in
                    PathID(Int.random(in: 1...2, using: &rng))
                }
                return .send(paths)
            case 12..<17:
                return .retransmit(count: Int.random(in: 1...3, using: &rng), to: path)
            case 17:
                return .expire(path)
            default:
                guard count > 0 else { return .send([path]) }
                return .abandon(TSN(cumulative.rawValue &+ UInt32.random(in: 1...UInt32(count), using: &rng)))
            }
        }

        func apply(to queue: inout OutstandingData, now: SCTPTime) {
            switch self {
            case .send(let paths):
                for path in paths {
                    _ = queue.insert(
                        DataFragment(streamID: StreamID(0), ssn: SSN(0), ppid: PPID(0), payload: testPayload(100)),
                        path: path, now: now)
                }
            case .retransmit(let count, let path):
                for _ in 0..<count { _ = queue.pollRetransmission(to: path, now: now) }
            case .expire(let path):
                queue.markAllForRetransmission(on: path)
            case .abandon(let tsn):
                queue.abandon(tsn)
            }
        }

        /// A SACK for a queue of `count` chunks above `cumulative`: a random advance of the cumulative ack, then
        /// runs of received chunks as gap blocks, some of them NR, sometimes shuffled, overlapping, empty, starting
        /// at 0 or reaching past the last chunk sent.
        static func sack(count: Int, cumulative: TSN, using rng: inout SCTPRandom) -> SackInfo {
            let advance = count == 0 || Int.random(in: 0..<3, using: &rng) == 0 ? 0 : Int.random(in: 0...min(count, 4), using: &rng)
            let left = count - advance
            let received = Double.random(in: 0.2...0.95, using: &rng)
            var blocks: [GapBlock] = []
            var offset = 1
            while offset <= left {
                if Double.random(in: 0..<1, using: &rng) < received {
                    let start = offset
                    while offset <= left, Double.random(in: 0..<1, using: &rng) < received { offset += 1 }
                    blocks.append((UInt16(start), UInt16(max(start, offset - 1))))
                }
                offset += 1
            }
            var gaps: [GapBlock] = []
            var nr: [GapBlock] = []
            for block in blocks {
                if Int.random(in: 0..<4, using: &rng) == 0 { nr.append(block) } else { gaps.append(block) }
            }
            switch Int.random(in: 0..<10, using: &rng) {
            case 0: gaps.shuffle(using: &rng)
            case 1: if let first = gaps.first { gaps.append((first.start, first.end &+ 3)) }  // overlapping
            case 2: gaps.append((0, 2))  // invalid: offsets start at 1
            case 3: gaps.append((UInt16(left + 2), UInt16(left + 6)))  // beyond the last chunk sent
            case 4: if let first = nr.first { gaps.insert(first, at: 0) }  // in a gap block and an NR block
            default: break
            }
            return SackInfo(
                cumulativeTSNAck: TSN(cumulative.rawValue &+ UInt32(advance)), advertisedReceiverWindowCredit: 100_000,
                gapAckBlocks: gaps, nrGapAckBlocks: nr, packetsSinceLastSack: Int.random(in: 1...3, using: &rng))
        }
    }
}
