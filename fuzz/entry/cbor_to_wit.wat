;; The WIT types the `cbor_to_wit` fuzz target decodes CBOR into: a component that imports
;; every interface of wit/ (as its guests see them: the node's `dstc:node` interfaces and
;; the example applications), then `dhost:fuzz/types`, with the WIT types wit/ does not
;; use, and `dhost:fuzz/newer`, with map and fixed-length lists (component-model features
;; a node's engine leaves off today, which `dhost::value` handles already). Keep it in step
;; with wit/: `fuzz/entry/cbor_to_wit.rs` reads it with the host's own `World::of`.
(component $types
  ;; wit/node/node.wit
  (import "wasi:io/poll@0.2.12" (instance $poll
    (export "pollable" (type (sub resource)))))
  (alias export $poll "pollable" (type $pollable))
  (import "dstc:node/host" (instance
    (type $level (enum "trace" "debug" "info" "warn" "error"))
    (export "level" (type $level-type (eq $level)))
    (export "node-name" (func (result string)))
    (export "log" (func (param "level" $level-type) (param "message" string)))))
  (import "dstc:node/timers" (instance
    (export "set-timer" (func (param "token" u64) (param "after-ms" u64)))
    (export "cancel-timer" (func (param "token" u64) (result bool)))))
  (import "dstc:node/readiness" (instance
    (alias outer $types $pollable (type $outer-pollable))
    (export "pollable" (type $pollable-type (eq $outer-pollable)))
    (export "watch" (func (param "token" u64) (param "ready" (borrow $pollable-type))))
    (export "unwatch" (func (param "token" u64) (result bool)))))
  (import "dstc:node/calls" (instance
    (type $call-error (variant
      (case "no-server" string) (case "timeout" string) (case "peer-gone" string)
      (case "trapped" string) (case "bad-arguments" string) (case "refused" string)
      (case "unavailable" string)))
    (export "call-error" (type $call-error-type (eq $call-error)))
    (export "set-target" (func (param "node" (option string))))
    (export "target" (func (result (option string))))))
  (import "dstc:node/mailboxes" (instance
    (type $call-error (variant
      (case "no-server" string) (case "timeout" string) (case "peer-gone" string)
      (case "trapped" string) (case "bad-arguments" string) (case "refused" string)
      (case "unavailable" string)))
    (export "call-error" (type $call-error-type (eq $call-error)))
    (export "read" (func (param "node" (option string)) (param "number" u32)
      (result (result (list u8) (error $call-error-type)))))
    (export "write" (func (param "node" (option string)) (param "number" u32)
      (param "data" (list u8)) (result (result (error $call-error-type)))))))
  (import "dstc:node/lifecycle" (instance
    (export "init" (func))))
  (import "dstc:node/stdin-events" (instance
    (export "on-line" (func (param "line" string)))))
  (import "dstc:node/timer-events" (instance
    (export "on-timer" (func (param "token" u64)))))
  (import "dstc:node/ready-events" (instance
    (export "on-ready" (func (param "token" u64)))))

  ;; wit/chat/chat.wit
  (import "dhost:chat/chat" (instance
    (export "message" (func (param "username" string) (param "msg" string)))))

  ;; wit/hostile/hostile.wit
  (import "dhost:hostile/attacks" (instance
    (export "spin" (func))
    (export "hog" (func (param "mib" u32)))
    (export "recurse" (func))
    (export "read-file" (func (param "path" string)))
    (export "read-env" (func (param "name" string)))
    (export "write-file" (func (param "path" string) (param "text" string)))
    (export "read-clock" (func))
    (export "lookup" (func (param "name" string)))
    (export "connect" (func (param "addr" string)))))

  ;; wit/kv/kv.wit
  (import "dhost:kv/store" (instance
    (export "put" (func (param "key" string) (param "value" string)))
    (export "get" (func (param "key" string) (result (option string))))
    (export "keys" (func (result (list string))))))
  (import "dhost:kv/admin" (instance
    (type $call-error (variant
      (case "no-server" string) (case "timeout" string) (case "peer-gone" string)
      (case "trapped" string) (case "bad-arguments" string) (case "refused" string)
      (case "unavailable" string)))
    (export "call-error" (type $call-error-type (eq $call-error)))
    (export "crash" (func (param "reason" string) (result (result string (error string)))))
    (export "count" (func (result (result u32 (error $call-error-type)))))
    (export "fetch" (func (param "node" string) (param "key" string)
      (result (result (option string) (error string)))))))

  ;; wit/stress/stress.wit
  (import "dhost:stress/sink" (instance
    (export "set-value" (func (param "v" s32)))
    (export "finish" (func (param "count" s32)))))
  (import "dhost:stress/flow" (instance
    (export "progress" (func (param "next" s32)))))

  ;; Every other WIT type.
  (import "dhost:fuzz/types" (instance
    (type $rec (record (field "x" s32) (field "name" string)))
    (export "rec" (type $rec-type (eq $rec)))
    (type $var (variant (case "none") (case "num" u32) (case "text" string)))
    (export "var" (type $var-type (eq $var)))
    (type $en (enum "red" "green" "blue"))
    (export "en" (type $en-type (eq $en)))
    (type $fl (flags "read" "write" "exec"))
    (export "fl" (type $fl-type (eq $fl)))
    (export "scalars" (func
      (param "b" bool)
      (param "s8" s8) (param "u8" u8) (param "s16" s16) (param "u16" u16)
      (param "s32" s32) (param "u32" u32) (param "s64" s64) (param "u64" u64)
      (param "f32" f32) (param "f64" f64) (param "c" char) (param "s" string)))
    (export "s64" (func (param "v" s64)))
    (export "compound" (func
      (param "words" (list string)) (param "rec" $rec-type) (param "var" $var-type)
      (param "en" $en-type) (param "fl" $fl-type) (param "tup" (tuple u8 string bool))))
    (export "options" (func
      (param "opt" (option u32)) (param "optopt" (option (option u32)))
      (param "res" (result string (error u8))) (param "unit-res" (result))
      (param "ok-only" (result u8)) (param "err-only" (result (error string)))))
    (export "nested" (func
      (param "nested" (list (tuple $rec-type (option $en-type))))
      (result (list (list (option $var-type))))))))

  (import "dhost:fuzz/newer" (instance
    (export "newer" (func
      (param "map" (map string u32)) (param "fixed" (list u8 4))
      (param "fixed-strings" (list string 2))))))
)
