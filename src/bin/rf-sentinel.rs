fn main() {
    println!("rf-sentinel: not built yet");
}
