//! Links Debian's libdqlite (`apt-get install libdqlite-dev`), which brings libraft, libuv and the
//! system SQLite with it.

fn main() {
  println!("cargo:rustc-link-lib=dqlite");
  println!("cargo:rerun-if-changed=build.rs");
}
