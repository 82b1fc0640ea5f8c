// Throwaway: the least stack a recursive evaluator needs (not committed).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let who = a[1].clone();
    let levels: usize = a[2].parse().unwrap();
    let bytes: usize = a[3].parse().unwrap();
    use vm_perf::{Expr, Function, Source, Program};
    let mut e = Expr::call(0, vec![Expr::sub(Expr::Get(0), Expr::Litr(1))]);
    for _ in 0..levels { e = Expr::add(Expr::Litr(1), e); }
    let body = Expr::if_(Expr::lt(Expr::Litr(0), Expr::Get(0)), e, Expr::Litr(0));
    let p = Program::validate(Source { functions: vec![Function { name: "deep".into(), params: vec!["n".into()], body }], main: Expr::call(0, vec![Expr::Arg(0)]) }).unwrap();
    let frames = vm_perf::engine::recursion_frames(&p);
    let r = std::thread::Builder::new().stack_size(bytes).spawn(move || {
        if who == "budgeted" {
            format!("{:?}", vm_perf::reference::trace(&p, &[9_999], u64::MAX).map(|t| t.value))
        } else {
            let e = vm_perf::engine(&who).unwrap();
            format!("{:?}", e.compile(&p).unwrap().execute(&[9_999]))
        }
    }).unwrap().join().unwrap();
    println!("{r} frames={frames}");
}
