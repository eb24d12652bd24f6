//! Lines of a buffered reader, handed out where they lie in the reader's buffer.
//!
//! Replay reads gigabytes of JSON lines. `read_until` copies every line out of the buffer into
//! a vector and finds its end a word at a time; both were about 6% of a replay's instructions
//! (callgrind). Here a line that lies inside the buffer is borrowed from it, its end found by
//! `memchr` (vectorised); only a line that straddles two fills is put together in a vector.

use std::io::{self, BufRead};

/// Calls `each` with every line of `reader`, without its `\n` (a `\r` before it stays: callers
/// trim), including a last line without a newline. Stops at the first error of `each` or of the
/// reader (`read_error` makes the latter an `E`).
pub fn for_each_line<R: BufRead + ?Sized, E>(
    reader: &mut R,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
    read_error: impl Fn(io::Error) -> E,
) -> Result<(), E> {
    // The start of a line that the buffer ended in the middle of.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        if buf.is_empty() {
            return if carry.is_empty() {
                Ok(())
            } else {
                each(&carry)
            };
        }
        let mut start = 0;
        while let Some(n) = memchr::memchr(b'\n', &buf[start..]) {
            let end = start + n;
            if carry.is_empty() {
                each(&buf[start..end])?;
            } else {
                carry.extend_from_slice(&buf[start..end]);
                each(&carry)?;
                carry.clear();
            }
            start = end + 1;
        }
        carry.extend_from_slice(&buf[start..]);
        let used = buf.len();
        reader.consume(used);
    }
}

/// `line` without the line end and trailing blanks (`\r`, `\n`, spaces, tabs): what replay and
/// the bench's baselines decode, and empty for a blank line, which they skip.
pub fn trim_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn lines(data: &[u8], capacity: usize) -> Vec<Vec<u8>> {
        let mut reader = BufReader::with_capacity(capacity, data);
        let mut got = Vec::new();
        for_each_line(
            &mut reader,
            |line| {
                got.push(line.to_vec());
                Ok::<(), io::Error>(())
            },
            |e| e,
        )
        .expect("reading from memory");
        got
    }

    #[test]
    fn lines_come_whole_across_buffer_ends() {
        let data = b"{\"a\":1}\r\n\nsecond line\nlast without newline";
        for capacity in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(data, capacity),
                vec![
                    b"{\"a\":1}\r".to_vec(),
                    b"".to_vec(),
                    b"second line".to_vec(),
                    b"last without newline".to_vec(),
                ],
                "capacity {capacity}"
            );
        }
        assert!(lines(b"", 4).is_empty());
        assert_eq!(lines(b"\n", 4), vec![b"".to_vec()]);
    }

    #[test]
    fn trimming_drops_the_line_end_and_trailing_blanks_only() {
        assert_eq!(trim_end(b" {\"a\":1} \t\r\n"), b" {\"a\":1}");
        assert_eq!(trim_end(b"\r"), b"");
        assert_eq!(trim_end(b""), b"");
    }

    #[test]
    fn the_first_error_of_the_callback_stops_the_reading() {
        let mut reader = BufReader::with_capacity(4, &b"a\nb\nc\n"[..]);
        let mut seen = 0;
        let result = for_each_line(
            &mut reader,
            |line| {
                seen += 1;
                if line == b"b" {
                    Err("stop")
                } else {
                    Ok(())
                }
            },
            |_| "read",
        );
        assert_eq!((result, seen), (Err("stop"), 2));
    }

    proptest::proptest! {
        /// The lines are those of splitting the whole input at each newline, whatever the
        /// buffer's size.
        #[test]
        fn lines_are_the_input_split_at_newlines(
            data in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', b'\r', 0xC3, 0xA9]), 0..200),
            capacity in 1usize..40,
        ) {
            let mut want: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            if data.last().is_none_or(|b| *b == b'\n') {
                want.pop();
            }
            proptest::prop_assert_eq!(lines(&data, capacity), want);
        }
    }
}
