//! Compile-time errors of `network!`, as a user sees them (trybuild).
//!
//! `.stderr` snapshots depend on the compiler, so these run on the pinned
//! toolchain only. Bless changes with `TRYBUILD=overwrite cargo test -p
//! lcnet-macros --test ui` and review the diff.

#[rustversion::attr(not(stable(1.95)), ignore)]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
