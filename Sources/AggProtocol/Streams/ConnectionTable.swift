/// A `StreamSession`'s connection records by `ConnectionID`, in a dense array indexed by the id's slot: a lookup is
/// an index and a comparison, not a hash (a connection is looked up some fifty times in its life). A slot is
/// reused once its record is removed; the serial number the id carries, kept with the record, tells the new
/// connection in a reused slot from the one an old id named, so an event for a connection already forgotten finds
/// nothing, exactly as in a dictionary keyed by the serial number.
struct ConnectionTable<Record> {
    private struct Entry {
        let serial: UInt64
        let record: Record
    }

    private var slots: [Entry?] = []
    /// Slots without a record, the most recently freed last.
    private var freeSlots: [UInt32] = []
    private var nextSerial: UInt64 = 1
    /// Records held.
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Adds `record` under a new id: the next serial number (1, 2, …: never reused) in a free slot.
    mutating func add(_ record: Record) -> ConnectionID {
        let slot: UInt32
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = UInt32(slots.count)
            slots.append(nil)
        }
        let id = ConnectionID(rawValue: nextSerial, slot: slot)
        nextSerial += 1
        slots[Int(slot)] = Entry(serial: id.rawValue, record: record)
        count += 1
        return id
    }

    /// The record of `id`; nil once it was removed (its slot empty or another connection's).
    subscript(id: ConnectionID) -> Record? {
        let slot = Int(id.slot)
        guard slot < slots.count, let entry = slots[slot], entry.serial == id.rawValue else { return nil }
        return entry.record
    }

    /// Removes the record of `id`, if held; its slot is free for a new connection.
    mutating func remove(_ id: ConnectionID) {
        let slot = Int(id.slot)
        guard slot < slots.count, let entry = slots[slot], entry.serial == id.rawValue else { return }
        slots[slot] = nil
        freeSlots.append(id.slot)
        count -= 1
    }

    /// The ids held, oldest first.
    var ids: [ConnectionID] {
        var ids: [ConnectionID] = []
        ids.reserveCapacity(count)
        for (slot, entry) in slots.enumerated() {
            if let entry { ids.append(ConnectionID(rawValue: entry.serial, slot: UInt32(slot))) }
        }
        return ids.sorted()
    }
}
