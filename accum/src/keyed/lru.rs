//! Least-recently-touched order of open generations, for `max_keys`
//! eviction: an intrusive doubly linked list over slots (two `u32` vectors),
//! so touching, removing and popping the oldest are O(1) with no allocation.

const NIL: u32 = u32::MAX;

/// Slots in touch order, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    /// Whether the slot is in the list.
    linked: Vec<bool>,
    head: u32,
    tail: u32,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Lru { head: NIL, tail: NIL, ..Default::default() }
    }

    /// Makes room for `slots` slots.
    pub(crate) fn grow(&mut self, slots: usize) {
        if slots > self.prev.len() {
            self.prev.resize(slots, NIL);
            self.next.resize(slots, NIL);
            self.linked.resize(slots, false);
        }
    }

    /// Moves `slot` to the most recent end (linking it if it was not).
    #[inline]
    pub(crate) fn touch(&mut self, slot: u32) {
        if self.tail == slot {
            return;
        }
        self.remove(slot);
        let s = slot as usize;
        self.prev[s] = self.tail;
        self.next[s] = NIL;
        if self.tail == NIL {
            self.head = slot;
        } else {
            self.next[self.tail as usize] = slot;
        }
        self.tail = slot;
        self.linked[s] = true;
    }

    /// Unlinks `slot` if it is linked.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32) {
        let s = slot as usize;
        if !self.linked[s] {
            return;
        }
        let (p, n) = (self.prev[s], self.next[s]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.linked[s] = false;
    }

    /// The least recently touched slot.
    pub(crate) fn oldest(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// Empties the list.
    pub(crate) fn clear(&mut self) {
        self.prev.clear();
        self.next.clear();
        self.linked.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    pub(crate) fn bytes_held(&self) -> usize {
        (self.prev.capacity() + self.next.capacity()) * 4 + self.linked.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_is_the_least_recently_touched() {
        let mut l = Lru::new();
        l.grow(4);
        assert_eq!(l.oldest(), None);
        for s in [0, 1, 2, 3] {
            l.touch(s);
        }
        l.touch(0);
        assert_eq!(l.oldest(), Some(1));
        l.remove(1);
        assert_eq!(l.oldest(), Some(2));
        l.remove(3);
        l.touch(2);
        assert_eq!(l.oldest(), Some(0));
        l.remove(0);
        l.remove(2);
        assert_eq!(l.oldest(), None);
        l.touch(3);
        assert_eq!(l.oldest(), Some(3));
    }
}
