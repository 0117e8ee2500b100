//! `embed_migrations!` reads `../migrations` at compile time, but Cargo only knows to
//! compile this crate again when its own sources change: without this, a new migration is
//! left out of an incremental build and the binaries run the schema without it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
