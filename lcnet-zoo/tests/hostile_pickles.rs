//! Pickles written to attack a loader are refused with an error: they never
//! run code, never crash, never allocate beyond their own size.

use lcnet_zoo::__private::pdparams;
use lcnet_zoo::__private::pickle::{self, MAX_DEPTH};

fn refused(bytes: &[u8], needle: &str) {
    match pickle::load(bytes) {
        Ok(v) => panic!("accepted a hostile pickle ({}), expected an error containing {needle:?}", v.kind()),
        Err(e) => assert!(e.contains(needle), "error {e:?} lacks {needle:?}"),
    }
}

#[test]
fn globals_outside_the_allow_list_are_refused_by_name() {
    // pickle.dumps(os.system("ls")) as protocol 2 writes with the text GLOBAL opcode.
    refused(b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.", "posix.system");
    // Protocol 4 names it with STACK_GLOBAL.
    refused(b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x061+1\x85R.", "builtins.eval");
    // numpy, but not one of the allowed callables.
    refused(b"\x80\x02cnumpy.core.multiarray\nscalar\n)R.", "numpy.core.multiarray.scalar");
    refused(b"\x80\x02cnumpy\nload\n)R.", "numpy.load");
    // _codecs.encode is allowed only as protocol 2's latin1 bytes.
    refused(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00utf-8\x86R.", "REDUCE");
}

#[test]
fn opcodes_outside_the_list_are_refused() {
    // INST (builds any class by name), PERSID/BINPERSID (loader callbacks), EXT1 (extension registry).
    refused(b"(iposix\nsystem\n.", "opcode");
    refused(b"\x80\x02Pid\n.", "opcode");
    refused(b"\x80\x02N\x51.", "0x51");
    refused(b"\x80\x02\x82\x01.", "0x82");
}

#[test]
fn deep_nesting_is_refused() {
    // 100 000 MARKs.
    let mut marks = b"\x80\x04".to_vec();
    marks.extend(std::iter::repeat_n(b'(', 100_000));
    marks.push(b'.');
    refused(&marks, "MARKs nest deeper");
    // A tuple in a tuple in a tuple ... 100 000 deep (TUPLE1 on the previous one).
    let mut tuples = b"\x80\x04)".to_vec();
    tuples.extend(std::iter::repeat_n(0x85u8, 100_000));
    tuples.push(b'.');
    refused(&tuples, &format!("deeper than {MAX_DEPTH}"));
    // Lists appended into lists.
    let mut lists = b"\x80\x04".to_vec();
    lists.extend(std::iter::repeat_n(b']', 1000));
    lists.extend(std::iter::repeat_n(b'a', 999));
    lists.push(b'.');
    refused(&lists, &format!("deeper than {MAX_DEPTH}"));
}

#[test]
fn a_list_containing_itself_is_refused() {
    // l = []; l.append(l)
    refused(b"\x80\x04]\x94h\x00a.", "self-referencing");
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    // BINBYTES8 claiming 2^62 bytes, BINUNICODE8 2^60, BINBYTES 4 GiB - 1.
    refused(b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x40abc.", "truncated");
    refused(b"\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x10abc.", "truncated");
    refused(b"\x80\x04B\xff\xff\xff\xffabc.", "truncated");
    // An array whose shape claims far more elements than its bytes hold.
    let mut big = b"\x80\x04\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85C\x01b\x87R(K\x01J\xff\xff\xff\x7fJ\xff\xff\xff\x7f\x86\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f4\x89\x88\x87R(K\x03\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x62\x89C\x04\x00\x00\x80?t\x62.".to_vec();
    refused(&big, "needs");
    // The same with a shape product that overflows usize.
    let at = big.windows(5).position(|w| w == b"J\xff\xff\xff\x7f").unwrap();
    big.splice(at..at + 5, b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f".iter().copied());
    let at = big.windows(5).position(|w| w == b"J\xff\xff\xff\x7f").unwrap();
    big.splice(at..at + 5, b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x3f".iter().copied());
    refused(&big, "overflow");
}

#[test]
fn truncated_and_malformed_streams_are_errors() {
    refused(b"", "no STOP");
    refused(b"\x80\x04}", "no STOP");
    refused(b"\x80\x04K", "truncated");
    refused(b"\x80\x04h\x05.", "memo key 5");
    refused(b"\x80\x04N\x85\x85R.", "underflow");
    refused(b"\x80\x04NN.", "expected one value");
    refused(b"\x80\x09N.", "protocol 9");
}

#[test]
fn a_pdparams_must_be_a_dict_of_arrays() {
    let err = pdparams::read(b"\x80\x04]\x94.").unwrap_err();
    assert!(err.contains("list"), "{err}");
    // {"fc.weight": 3}
    let err = pdparams::read(b"\x80\x04}(\x8c\x09fc.weightK\x03u.").unwrap_err();
    assert!(err.contains("fc.weight") && err.contains("int"), "{err}");
}
