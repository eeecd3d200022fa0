//! The input and output buffers of a check's connections, on the worker thread running it.
//! ureq's own `LazyBuffers` allocate and zero them for every connection: 96 KiB (80 KiB in,
//! 16 KiB out) per plain check and twice that per HTTPS check (the TLS records and the
//! plain text), the largest single cost of a plain check in user space. These are taken
//! from a small pool shared by all workers and given back when the connection closes, so a
//! check zeroes nothing; a buffer's old bytes are never read, since only what was appended
//! since it was taken is handed to ureq.

use std::sync::Mutex;

use ureq::unversioned::transport::Buffers;

/// Buffer pairs kept for the next connections, at most (64 × 96 KiB = 6 MiB). As many
/// connections are open at once as checks are between connect and close, mostly far fewer
/// than the workers; beyond this many, buffers are allocated and freed as before.
const KEPT: usize = 64;

/// Room for a request body read through the input buffer, as ureq's own buffers keep.
const MIN_TMP: usize = 10 * 1024;

static POOL: Mutex<Vec<(Vec<u8>, Vec<u8>)>> = Mutex::new(Vec::new());

/// ureq's [`Buffers`] over pooled memory, allocated on first use.
#[derive(Debug)]
pub struct PooledBuffers {
    input_size: usize,
    output_size: usize,
    input: Vec<u8>,
    /// `input[consumed..filled]` is what ureq has not consumed yet.
    filled: usize,
    consumed: usize,
    output: Vec<u8>,
    /// Whether the last consume took anything (ureq's "can use the input again" rule).
    progress: bool,
}

impl PooledBuffers {
    pub fn new(input_size: usize, output_size: usize) -> PooledBuffers {
        PooledBuffers {
            input_size: input_size.max(1),
            output_size: output_size.max(1),
            input: Vec::new(),
            filled: 0,
            consumed: 0,
            output: Vec::new(),
            progress: false,
        }
    }

    fn ensure_allocation(&mut self) {
        if !self.output.is_empty() {
            return;
        }
        let taken = {
            let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
            let fits = |(i, o): &(Vec<u8>, Vec<u8>)| {
                i.len() == self.input_size && o.len() == self.output_size
            };
            pool.iter().rposition(fits).map(|at| pool.swap_remove(at))
        };
        let (input, output) =
            taken.unwrap_or_else(|| (vec![0; self.input_size], vec![0; self.output_size]));
        self.input = input;
        self.output = output;
    }

    /// Moves the unconsumed bytes to the front when that frees room, as ureq's buffer does.
    fn maybe_shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.input.len() / 2 {
            self.input.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Drop for PooledBuffers {
    fn drop(&mut self) {
        if self.output.is_empty() {
            return;
        }
        let (mut input, output) = (
            std::mem::take(&mut self.input),
            std::mem::take(&mut self.output),
        );
        // A request body may have grown the input; the pool keeps the usual size.
        input.truncate(self.input_size);
        if input.len() != self.input_size || output.len() != self.output_size {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < KEPT {
            pool.push((input, output));
        }
    }
}

impl Buffers for PooledBuffers {
    fn output(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        &mut self.output
    }

    fn input(&self) -> &[u8] {
        &self.input[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        self.maybe_shift();
        &mut self.input[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled += amount;
        assert!(self.filled <= self.input.len(), "appended past the buffer");
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed += amount;
        assert!(self.consumed <= self.filled, "consumed past the input");
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.ensure_allocation();
        self.maybe_shift();
        let free = self.input.len() - self.filled;
        if free < MIN_TMP {
            self.input.resize(self.input.len() + MIN_TMP - free, 0);
        }
        (&mut self.input[self.filled..], &mut self.output)
    }

    fn can_use_input(&self) -> bool {
        self.consumed < self.filled && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_what_was_appended_and_not_consumed() {
        let mut b = PooledBuffers::new(64, 16);
        b.input_append_buf()[..5].copy_from_slice(b"hello");
        b.input_appended(5);
        assert_eq!(b.input(), b"hello");
        assert!(!b.can_use_input(), "nothing consumed yet");
        b.input_consume(2);
        assert_eq!(b.input(), b"llo");
        assert!(b.can_use_input());
        b.input_consume(3);
        assert_eq!(b.input(), b"");
        assert_eq!(
            b.input_append_buf().len(),
            64,
            "room again once all is consumed"
        );
        assert_eq!(b.output().len(), 16);
    }

    #[test]
    fn a_request_body_gets_its_scratch_room() {
        let mut b = PooledBuffers::new(1024, 16);
        b.input_append_buf();
        b.input_appended(1000);
        let (tmp, out) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP);
        assert_eq!(out.len(), 16);
    }

    #[test]
    fn buffers_come_back_to_the_pool_and_are_handed_out_again() {
        // An unusual size, so that no other test's buffers are taken.
        let sizes = (4096 + 7, 333);
        let first = {
            let mut b = PooledBuffers::new(sizes.0, sizes.1);
            b.output().as_ptr()
        };
        let mut again = PooledBuffers::new(sizes.0, sizes.1);
        assert_eq!(
            again.output().as_ptr(),
            first,
            "the same memory, not zeroed again"
        );
    }
}
