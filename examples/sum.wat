;; Fill linear memory with 1..n as i64 and sum it back: loops, loads, stores.
(module
  (memory (export "memory") 1)
  (func (export "sum") (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i64.store (i32.shl (local.get $i) (i32.const 3))
                   (i64.extend_i32_u (i32.add (local.get $i) (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (local.set $i (i32.const 0))
    (block $done2
      (loop $add
        (br_if $done2 (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc)
                                 (i64.load (i32.shl (local.get $i) (i32.const 3)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $add)))
    (local.get $acc)))
