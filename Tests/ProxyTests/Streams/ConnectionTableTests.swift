import Testing

@testable import AggProtocol
@testable import Proxy

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

    @Test func aMapKeepsAnOldConnectionsValueWhenTheSessionGaveItsSlotToANewOne() {
        var table = ConnectionTable<Record>()
        var map = ConnectionMap<String>()
        let old = table.add(Record("old"))
        map[old] = "old channel"
        table.remove(old)  // The session forgot it; the glue still holds its channel.
        let new = table.add(Record("new"))
        #expect(new.slot == old.slot)
        #expect(map[new] == nil)  // The old value is not the new connection's...
        map[new] = "new channel"
        #expect(map[old] == "old channel")  // ...and setting the new one's keeps the old one's.
        #expect(map[new] == "new channel")
        #expect(map.removeValue(forKey: old) == "old channel")
        #expect(map[old] == nil)
        #expect(map[new] == "new channel")
        map[new] = nil
        #expect(map[new] == nil)
        #expect(map.removeValue(forKey: new) == nil)
    }

    @Test func aMapValueMovedFromTheOverflowToItsSlotIsKeptOnce() {
        var table = ConnectionTable<Record>()
        var map = ConnectionMap<Int>()
        let old = table.add(Record("old"))
        map[old] = 1
        table.remove(old)
        let new = table.add(Record("new"))
        map[new] = 2  // The slot is the old connection's: the value waits beside the array.
        map[old] = nil  // The slot is free now...
        map[new] = 3  // ...and the new value takes it.
        #expect(map[new] == 3)
        #expect(map.removeValue(forKey: new) == 3)
        #expect(map[new] == nil)  // No stale value is left behind.
        #expect(map[old] == nil)
    }
}
