fn main() {
    println!("{}", blocker::enforce::XDP_OBJECT.len());
}
