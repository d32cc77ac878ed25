import Testing

@testable import SCTPEngine

extension Components {
    /// `PathTable`: paths are named by id, so removing one leaves every other path, and the primary, where they were.
    @Suite struct PathTableTests {
        func path(_ id: Int) -> Path {
            Path(
                id: PathID(id), remoteAddress: SCTPSocketAddress(ip: .init(v4: 10, 0, 0, UInt8(id)), port: 9899),
                mtu: 1200, isConfirmed: true)
        }

        func table(_ ids: Int...) -> PathTable {
            var table = PathTable()
            for id in ids { table.append(path(id)) }
            return table
        }

        @Test func theFirstPathAddedIsPrimary() {
            let paths = table(4, 5)
            #expect(paths.primaryID == PathID(4))
            #expect(paths.primary.remoteAddress.ip == .init(v4: 10, 0, 0, 4))
        }

        @Test func removingAnEarlierPathLeavesLaterOnesAndThePrimaryWithTheirIDs() {
            var paths = table(0, 1, 2)
            paths.makePrimary(PathID(2))
            paths[PathID(2)].counters.retransmissions = 5
            paths[PathID(1)].counters.retransmissions = 7

            let removed = paths.remove(PathID(0))

            #expect(removed?.id == PathID(0))
            #expect(paths.map(\.id) == [PathID(1), PathID(2)], "the others keep their order")
            #expect(paths.primaryID == PathID(2))
            #expect(paths.primary.remoteAddress.ip == .init(v4: 10, 0, 0, 2))
            #expect(paths[PathID(2)].counters.retransmissions == 5)
            #expect(paths[PathID(1)].counters.retransmissions == 7)
            #expect(paths.position(of: PathID(0)) == nil)
            let again = paths.remove(PathID(0))
            #expect(again == nil, "a path is removed once")
        }

        @Test func removingThePrimaryMakesTheFirstRemainingPathPrimary() {
            var paths = table(0, 1, 2)
            paths.makePrimary(PathID(1))
            paths.remove(PathID(1))
            #expect(paths.primaryID == PathID(0))
            paths.remove(PathID(0))
            #expect(paths.primaryID == PathID(2))
        }

        @Test func lookupsByPredicateAnswerWithIDsInTableOrder() {
            var paths = table(3, 7, 9)
            paths[PathID(7)].isStandby = true
            paths[PathID(9)].isStandby = true
            #expect(paths.firstID { $0.isStandby } == PathID(7))
            #expect(paths.ids { $0.isStandby } == [PathID(7), PathID(9)])
            #expect(paths.firstID { $0.remoteAddress.port == 1 } == nil)
        }

        @Test func replacingAPathKeepsItsPlace() {
            var paths = table(0, 1, 2)
            var fresh = path(1)
            fresh.localAddress = SCTPSocketAddress(ip: .init(v4: 10, 9, 9, 9), port: 1)
            paths.replace(fresh)
            #expect(paths.map(\.id) == [PathID(0), PathID(1), PathID(2)])
            #expect(paths[1].localAddress == fresh.localAddress)
        }
    }
}
