import AggProtocol

/// Values by `ConnectionID` for glue that keeps something per connection beside the session (a channel, a
/// promise): a dense array indexed by the id's slot, so a lookup is an index and a comparison. The session may
/// give a slot to a new connection while the glue still holds the old one's value; the new one's value then goes
/// to a dictionary beside the array (empty, and never hashed, in the usual case), so every id keeps its own value.
/// In the glue's module so that it is specialized for its values (a generic type of another module runs
/// unspecialized: metadata looked up on every access).
struct ConnectionMap<Value> {
    private struct Entry {
        let serial: UInt64
        var value: Value
    }

    private var slots: [Entry?] = []
    /// Values whose slot holds an older connection's value.
    private var overflow: [ConnectionID: Value] = [:]

    init() {}

    subscript(id: ConnectionID) -> Value? {
        get {
            let slot = Int(id.slot)
            if slot < slots.count, let entry = slots[slot], entry.serial == id.rawValue { return entry.value }
            return overflow.isEmpty ? nil : overflow[id]
        }
        set {
            if let newValue {
                set(newValue, for: id)
            } else {
                removeValue(forKey: id)
            }
        }
    }

    /// Removes and returns the value of `id`, if any.
    @discardableResult
    mutating func removeValue(forKey id: ConnectionID) -> Value? {
        let slot = Int(id.slot)
        if slot < slots.count, let entry = slots[slot], entry.serial == id.rawValue {
            slots[slot] = nil
            return entry.value
        }
        return overflow.isEmpty ? nil : overflow.removeValue(forKey: id)
    }

    private mutating func set(_ value: Value, for id: ConnectionID) {
        let slot = Int(id.slot)
        if slot >= slots.count { slots.append(contentsOf: repeatElement(nil, count: slot + 1 - slots.count)) }
        if let entry = slots[slot], entry.serial != id.rawValue {
            overflow[id] = value
            return
        }
        slots[slot] = Entry(serial: id.rawValue, value: value)
        // An id is kept in one place only: a value it had in the overflow is replaced.
        if !overflow.isEmpty { overflow.removeValue(forKey: id) }
    }
}
