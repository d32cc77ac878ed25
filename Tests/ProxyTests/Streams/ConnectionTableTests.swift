import Testing

@testable import AggProtocol

@Suite struct ConnectionTableTests {
    final class Record {
        let name: String
        init(_ name: String) { self.name = name }
    }

    @Test func aRemovedConnectionsIdFindsNothingOnceANewOneTakesItsSlot() {
        var table = ConnectionTable<Record>()
        let old = table.add(Record("old"))
        table.remove(old)
        let new = table.add(Record("new"))
        #expect(new.slot == old.slot)  // The slot is reused...
        #expect(new != old)  // ...under a new serial number,
        #expect(table[old] == nil)  // so a late event of the old connection finds nothing,
        #expect(table[new]?.name == "new")
        table.remove(old)  // and removing the old id again leaves the new connection alone.
        #expect(table[new]?.name == "new")
        #expect(table.count == 1)
    }

    @Test func idsAreSerialNumbersNeverReusedAndEachFindsItsOwnRecord() {
        var table = ConnectionTable<Record>()
        var live: [(ConnectionID, String)] = []
        var serials: Set<UInt64> = []
        for round in 0..<50 {
            let id = table.add(Record("r\(round)"))
            #expect(serials.insert(id.rawValue).inserted)
            live.append((id, "r\(round)"))
            if round % 3 == 2 {
                // Frees a slot in the middle: the next connection takes it.
                let (gone, _) = live.remove(at: live.count / 2)
                table.remove(gone)
                #expect(table[gone] == nil)
            }
        }
        #expect(table.count == live.count)
        for (id, name) in live { #expect(table[id]?.name == name) }
        #expect(table.ids == live.map(\.0).sorted())
        #expect(serials.sorted() == Array(1...50))
    }

    @Test func anIdBeyondTheSlotsFindsNothing() {
        var table = ConnectionTable<Record>()
        let id = table.add(Record("a"))
        #expect(table[ConnectionID(rawValue: id.rawValue, slot: 7)] == nil)
        #expect(table[ConnectionID(rawValue: 99, slot: id.slot)] == nil)
    }
}
