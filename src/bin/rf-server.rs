fn main() {
    println!("rf-server: not built yet");
}
