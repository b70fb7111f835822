//! The `wsx` command line.

fn main() {
    println!("wsx");
}
