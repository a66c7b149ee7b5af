fn main() {
    println!("rf-operator: not built yet");
}
