import Testing

@testable import SCTPEngine

extension Components {
    /// The data tracker against a plain reference model (a set of received TSNs) under random arrival orders, and
    /// the cost of out-of-order arrivals counted in tree steps rather than measured in time.
    @Suite struct DataTrackerModelTests {
        /// What the tracker must do, written the obvious way: every received TSN above the cumulative TSN in a set.
        struct Model {
            var cumulative: UInt64
            var received: Set<UInt64> = []
            var delivered: Set<UInt64> = []
            var maxTSNsAhead: UInt64

            init(peerInitialTSN: TSN, maxTSNsAhead: UInt32) {
                cumulative = (1 << 32) + UInt64(peerInitialTSN.previous.rawValue)
                self.maxTSNsAhead = UInt64(maxTSNsAhead)
            }

            var cumulativeTSN: TSN { TSN(UInt32(truncatingIfNeeded: cumulative)) }

            func delta(_ tsn: TSN) -> Int64 { Int64(Int32(bitPattern: tsn.rawValue &- cumulativeTSN.rawValue)) }

            func hasReceived(_ tsn: TSN) -> Bool {
                delta(tsn) <= 0 || received.contains(cumulative + UInt64(delta(tsn)))
            }

            mutating func handleData(_ tsn: TSN) -> DataTracker.Disposition {
                let d = delta(tsn)
                if d <= 0 || received.contains(cumulative + UInt64(d)) { return .duplicate }
                guard UInt64(d) <= maxTSNsAhead else { return .outOfWindow }
                received.insert(cumulative + UInt64(d))
                advance()
                return .new
            }

            mutating func handleForwardTSN(_ tsn: TSN) {
                let d = delta(tsn)
                guard d > 0 else { return }
                cumulative += UInt64(d)
                received = received.filter { $0 > cumulative }
                advance()
            }

            mutating func markDelivered(_ first: TSN, _ last: TSN) {
                let lo = delta(first)
                let hi = delta(last)
                guard hi > 0, lo <= hi else { return }
                let range = (cumulative + UInt64(max(lo, 1)))...(cumulative + UInt64(hi))
                guard range.allSatisfy({ received.contains($0) }) else { return }
                delivered.formUnion(range)
            }

            private mutating func advance() {
                while received.remove(cumulative + 1) != nil { cumulative += 1 }
                delivered = delivered.filter { $0 > cumulative }
            }

            /// Sorted runs of `values` as gap blocks: the lowest `count - newest` expressible ones and the highest
            /// `newest`, as `DataTracker.makeSack` documents.
            func blocks(_ values: Set<UInt64>, max count: Int, newest: Int) -> [[UInt16]] {
                var runs: [ClosedRange<UInt64>] = []
                for value in values.sorted() {
                    if let last = runs.last, last.upperBound + 1 == value {
                        runs[runs.count - 1] = last.lowerBound...value
                    } else {
                        runs.append(value...value)
                    }
                }
                let expressible = runs.filter { $0.lowerBound - cumulative <= UInt64(UInt16.max) }
                let highest = expressible.count > count ? min(newest, count) : 0
                let lowest = min(expressible.count, count) - highest
                let chosen = Array(expressible.prefix(lowest)) + Array(expressible.suffix(highest))
                return chosen.map {
                    [UInt16($0.lowerBound - cumulative), UInt16(min($0.upperBound - cumulative, UInt64(UInt16.max)))]
                }
            }
        }

        func blocks(_ sack: SackInfo) -> [[UInt16]] { sack.gapAckBlocks.map { [$0.start, $0.end] } }
        func nrBlocks(_ sack: SackInfo) -> [[UInt16]] { sack.nrGapAckBlocks.map { [$0.start, $0.end] } }

        /// Random packets of TSNs (new, duplicate, far ahead), FORWARD-TSNs and NR deliveries, starting near the
        /// TSN wrap; after every packet the SACK, the cumulative TSN and every disposition match the model.
        @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
        func randomArrivalsMatchTheModel(seed: UInt64) {
            var random = SCTPRandom(seed: seed)
            let initial = TSN(UInt32.max - UInt32(random.next() % 3000))
            var configuration = DataTracker.Configuration()
            configuration.maxTSNsAhead = 70_000
            var tracker = DataTracker(peerInitialTSN: initial, configuration: configuration)
            var model = Model(peerInitialTSN: initial, maxTSNsAhead: configuration.maxTSNsAhead)
            let now = SCTPTime(nanoseconds: 1)
            // Windows of different widths: a few wide gaps, many narrow ones, and offsets past 16 bits.
            let spans: [UInt32] = [8, 64, 600, 70_100]
            for step in 0..<2000 {
                let span = spans[Int(random.next() % UInt64(spans.count))]
                switch random.next() % 20 {
                case 0:
                    let target = model.cumulativeTSN.advanced(by: UInt32(random.next() % UInt64(span / 2 + 1)))
                    tracker.handleForwardTSN(newCumulativeTSN: target, now: now)
                    model.handleForwardTSN(target)
                case 1, 2:
                    let first = model.cumulativeTSN.advanced(by: UInt32(random.next() % UInt64(span)))
                    let last = first.advanced(by: UInt32(random.next() % 8))
                    tracker.markDelivered(from: first, through: last)
                    model.markDelivered(first, last)
                default:
                    for _ in 0..<(1 + random.next() % 6) {
                        // Mostly ahead of the cumulative TSN, sometimes at or behind it (duplicates).
                        let offset = Int64(random.next() % UInt64(span)) - 3
                        let tsn = TSN(model.cumulativeTSN.rawValue &+ UInt32(truncatingIfNeeded: offset))
                        #expect(tracker.handleData(tsn: tsn) == model.handleData(tsn), "step \(step) tsn \(tsn)")
                    }
                    tracker.handlePacketEnd(now: now)
                }
                #expect(tracker.cumulativeTSN == model.cumulativeTSN, "step \(step)")
                #expect(tracker.hasGaps == !model.received.isEmpty, "step \(step)")
                let (count, newest) = random.next() % 2 == 0 ? (64, 0) : (6, 3)
                let sack = tracker.makeSack(
                    advertisedReceiverWindowCredit: 0, maxGapBlocks: count, newestGapBlocks: newest,
                    includeNonRenegable: true)
                #expect(blocks(sack) == model.blocks(model.received, max: count, newest: newest), "step \(step)")
                #expect(nrBlocks(sack) == model.blocks(model.delivered, max: count, newest: newest), "step \(step)")
                for _ in 0..<4 {
                    let probe = model.cumulativeTSN.advanced(by: UInt32(random.next() % UInt64(span)))
                    #expect(tracker.hasReceived(probe) == model.hasReceived(probe), "step \(step)")
                }
            }
        }

        /// A peer cannot make us hold more than `maxGapRanges` ranges: a TSN that would open one more is refused
        /// (and not acknowledged), while TSNs that extend a range, fill a hole or come next in sequence still count.
        @Test func gapRangesAreCapped() {
            var configuration = DataTracker.Configuration()
            configuration.maxGapRanges = 100
            var tracker = DataTracker(peerInitialTSN: TSN(1), configuration: configuration)
            for i in 0..<100 { #expect(tracker.handleData(tsn: TSN(3 + 2 * UInt32(i))) == .new) }
            #expect(tracker.gapRangeCount == 100)
            #expect(tracker.handleData(tsn: TSN(1000)) == .tooManyGaps)
            #expect(tracker.handleData(tsn: TSN(202)) == .new)  // extends the highest range
            #expect(tracker.handleData(tsn: TSN(4)) == .new)  // fills a hole, joining two ranges
            #expect(tracker.gapRangeCount == 99)
            #expect(tracker.handleData(tsn: TSN(1000)) == .new)
            #expect(tracker.handleData(tsn: TSN(2000)) == .tooManyGaps)
            #expect(tracker.handleData(tsn: TSN(1)) == .new)  // the next in sequence is always taken
            #expect(tracker.handleData(tsn: TSN(2)) == .new)
            #expect(tracker.cumulativeTSN == TSN(5))
            #expect(tracker.handleData(tsn: TSN(2000)) == .new)
            #expect(tracker.handleData(tsn: TSN(7)) == .duplicate)
        }

        /// Out-of-order TSNs cost O(log n) each for n ranges held, whatever their order: 20,000 isolated TSNs in
        /// random order, then their holes filled lowest first (each fill moves the cumulative TSN past one range),
        /// then the same again filled in random order. A sorted array pays a shift of every range behind the
        /// change, about n²/2 steps per round; the tree pays a bounded number of steps per level.
        @Test func outOfOrderArrivalsCostLogarithmicSteps() {
            let n = 20_000
            var random = SCTPRandom(seed: 42)
            var configuration = DataTracker.Configuration()
            configuration.maxGapRanges = n
            var tracker = DataTracker(peerInitialTSN: TSN(1), configuration: configuration)
            let now = SCTPTime(nanoseconds: 1)
            var operations = 0
            for round in 0..<2 {
                let base = UInt32(1 + round * 2 * n)
                var isolated = (0..<n).map { base + 1 + 2 * UInt32($0) }
                isolated.shuffle(using: &random)
                for tsn in isolated {
                    #expect(tracker.handleData(tsn: TSN(tsn)) == .new)
                    tracker.handlePacketEnd(now: now)
                    _ = tracker.makeSack(advertisedReceiverWindowCredit: 0)
                    operations += 1
                }
                var holes = (0..<n).map { base + 2 * UInt32($0) }
                if round == 1 { holes.shuffle(using: &random) }
                for tsn in holes {
                    #expect(tracker.handleData(tsn: TSN(tsn)) == .new)
                    tracker.handlePacketEnd(now: now)
                    _ = tracker.makeSack(advertisedReceiverWindowCredit: 0)
                    operations += 1
                }
                #expect(tracker.cumulativeTSN == TSN(base + 2 * UInt32(n) - 1))
                #expect(!tracker.hasGaps)
            }
            // An AVL tree of n ranges is at most 1.44·log2(n) + 2 deep. Each operation walks it a few times (find,
            // insert or remove with rebalancing) and the SACK visits its 64 lowest blocks.
            let depth = (1.44 * Double(n.bitWidth - n.leadingZeroBitCount)).rounded(.up) + 2
            let bound = operations * (6 * Int(depth) + 2 * 64)
            #expect(tracker.workSteps <= bound, "\(tracker.workSteps) steps for \(operations) operations")
        }
    }
}
