import Testing

@testable import SCTPEngine

extension Components {
    /// The AVL range set against a plain set of values: random inserts of values and ranges, removals of ranges and
    /// of the lowest values; after each step the same ranges in both directions, and a tree no deeper than AVL allows.
    @Suite struct TSNRangeSetTests {
        /// The maximal runs of consecutive values in `values`.
        static func runs(_ values: Set<UnwrappedTSN>) -> [ClosedRange<UnwrappedTSN>] {
            var runs: [ClosedRange<UnwrappedTSN>] = []
            for value in values.sorted() {
                if let last = runs.last, last.upperBound + 1 == value {
                    runs[runs.count - 1] = last.lowerBound...value
                } else {
                    runs.append(value...value)
                }
            }
            return runs
        }

        @Test(arguments: [1, 2, 3, 4] as [UInt64])
        func randomChangesMatchASetOfValues(seed: UInt64) {
            var random = SCTPRandom(seed: seed)
            var set = TSNRangeSet()
            var model = Set<UnwrappedTSN>()
            let base = UnwrappedTSN(value: 1 << 32)
            for step in 0..<3000 {
                let value = base + Int(random.next() % 2000)
                switch random.next() % 10 {
                case 0...4:
                    #expect(set.insert(value) == model.insert(value).inserted, "step \(step)")
                case 5:
                    let range = value...(value + Int(random.next() % 20))
                    set.insert(range)
                    model.formUnion(range)
                case 6, 7:
                    let range = value...(value + Int(random.next() % 40))
                    set.remove(range)
                    model.subtract(range)
                case 8:
                    set.removeAll(through: value - 1000)
                    model = model.filter { $0 > value - 1000 }
                default:
                    if let first = Self.runs(model).first {
                        set.removeFirst()
                        model.subtract(first)
                    }
                }
                let runs = Self.runs(model)
                #expect(set.count == runs.count, "step \(step)")
                #expect(set.first == runs.first, "step \(step)")
                var ignored = 0
                var ascending: [ClosedRange<UnwrappedTSN>] = []
                set.forEachAscending(through: .max, limit: .max, steps: &ignored) { ascending.append($0) }
                #expect(ascending == runs, "step \(step)")
                var descending: [ClosedRange<UnwrappedTSN>] = []
                let bound = base + 1000
                set.forEachDescending(through: bound, limit: 5, steps: &ignored) { descending.append($0) }
                #expect(descending == Array(runs.filter { $0.lowerBound <= bound }.reversed().prefix(5)))
                let probe = base + Int(random.next() % 2000)
                #expect(set.contains(probe) == model.contains(probe))
                #expect(set.floor(probe) == runs.last { $0.lowerBound <= probe })
                #expect(set.ceiling(probe) == runs.first { $0.lowerBound >= probe })
                // AVL: height < 1.45·log2(n + 2).
                let n = Double(runs.count + 2)
                #expect(Double(set.height) < 1.45 * (Double(n.exponent) + 1), "step \(step)")
            }
        }
    }
}
