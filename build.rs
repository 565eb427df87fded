// Embedded migrations and the GraphiQL assets are compiled into the binary.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=assets");
}
