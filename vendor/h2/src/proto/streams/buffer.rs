use slab::Slab;

/// Buffers frames for multiple streams.
#[derive(Debug)]
pub struct Buffer<T> {
    slab: Slab<Slot<T>>,
}

/// A sequence of frames in a `Buffer`
#[derive(Debug)]
pub struct Deque {
    indices: Option<Indices>,
}

/// Tracks the head & tail for a sequence of frames in a `Buffer`.
#[derive(Debug, Default, Copy, Clone)]
struct Indices {
    head: usize,
    tail: usize,
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    next: Option<usize>,
}

impl<T> Buffer<T> {
    pub fn new() -> Self {
        Buffer { slab: Slab::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

/// plumb: makes room for one more entry by doubling from one slot, where `Vec`'s first growth
/// is to four. h2's entries are large (a stream ~330 bytes, a queued frame ~300), the slabs
/// keep their capacity for the connection's life, and a connection with one long-lived stream
/// (a gRPC control stream) rarely holds more than one of each: four slots held ~3.5 KiB of it.
pub(crate) fn grow_by_doubling<T>(slab: &mut Slab<T>) {
    if slab.len() == slab.capacity() {
        slab.reserve_exact(slab.capacity().max(1));
    }
}

impl Deque {
    pub fn new() -> Self {
        Deque { indices: None }
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_none()
    }

    pub fn push_back<T>(&mut self, buf: &mut Buffer<T>, value: T) {
        grow_by_doubling(&mut buf.slab); // plumb
        let key = buf.slab.insert(Slot { value, next: None });

        match self.indices {
            Some(ref mut idxs) => {
                buf.slab[idxs.tail].next = Some(key);
                idxs.tail = key;
            }
            None => {
                self.indices = Some(Indices {
                    head: key,
                    tail: key,
                });
            }
        }
    }

    pub fn push_front<T>(&mut self, buf: &mut Buffer<T>, value: T) {
        let key = buf.slab.insert(Slot { value, next: None });

        match self.indices {
            Some(ref mut idxs) => {
                buf.slab[key].next = Some(idxs.head);
                idxs.head = key;
            }
            None => {
                self.indices = Some(Indices {
                    head: key,
                    tail: key,
                });
            }
        }
    }

    pub fn pop_front<T>(&mut self, buf: &mut Buffer<T>) -> Option<T> {
        match self.indices {
            Some(mut idxs) => {
                let mut slot = buf.slab.remove(idxs.head);

                if idxs.head == idxs.tail {
                    assert!(slot.next.is_none());
                    self.indices = None;
                } else {
                    idxs.head = slot.next.take().unwrap();
                    self.indices = Some(idxs);
                }

                Some(slot.value)
            }
            None => None,
        }
    }
}

// plumb: the test of `grow_by_doubling` (see vendor/h2/PLUMB.md).
#[cfg(test)]
mod plumb_test {
    use super::*;

    #[test]
    fn plumb_slabs_grow_from_one_slot_by_doubling() {
        let mut buf = Buffer::new();
        let mut deque = Deque::new();
        let mut capacities = Vec::new();
        for n in 0..9 {
            deque.push_back(&mut buf, n);
            capacities.push(buf.slab.capacity());
        }
        assert_eq!(capacities, [1, 2, 4, 4, 8, 8, 8, 8, 16]);
        for n in 0..9 {
            assert_eq!(deque.pop_front(&mut buf), Some(n));
        }
        // Freed slots are reused before the slab grows.
        deque.push_back(&mut buf, 9);
        assert_eq!(buf.slab.capacity(), 16);
    }
}
