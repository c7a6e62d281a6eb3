//! Tests of Go's value formatting (`gofmt.rs`).

use super::*;

fn f(x: f64) -> String {
    sprint(&[Value::Float(x)])
}

#[test]
fn floats_print_as_go() {
    let cases: &[(f64, &str)] = &[
        (100.0, "100"),
        (1000000.0, "1e+06"),
        (999999.0, "999999"),
        (123456.0, "123456"),
        (0.1, "0.1"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.5e-05, "1.5e-05"),
        (123456789.0, "1.23456789e+08"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (0.0, "0"),
        (-0.0, "-0"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (1e100, "1e+100"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.30000000000000004, "0.30000000000000004"),
        (33.333333333333336, "33.333333333333336"),
        (608863452348.1149, "6.088634523481149e+11"),
    ];
    for (x, want) in cases {
        assert_eq!(&f(*x), want, "{x}");
    }
}

#[test]
fn float_verbs() {
    let cases: &[(&str, f64, &str)] = &[
        ("%.4g", 1.234567, "1.235"),
        ("%.4g", 120.00000000000001, "120"),
        ("%.4g", 12345.0, "1.234e+04"),
        ("%.4g", 100000.0, "1e+05"),
        ("%.4g", 0.0, "0"),
        ("%.4g", 0.00012, "0.00012"),
        ("%.4g", 12.345, "12.35"),
        ("%g", 1e6, "1e+06"),
        ("%G", 1e-7, "1E-07"),
        ("%e", 1234.5678, "1.234568e+03"),
        ("%E", 0.0, "0.000000E+00"),
        ("%.2e", 1e100, "1.00e+100"),
        ("%f", 4.56789, "4.567890"),
        ("%.2f", 2.675, "2.67"),
        ("%.0f", 2.5, "2"),
        ("%.0f", 3.5, "4"),
        ("%F", 1.0, "1.000000"),
        ("%8.3f", 4.56789, "   4.568"),
        ("%-8.3f|", 4.56789, "4.568   |"),
        ("%08.3f", -4.56789, "-004.568"),
        ("%+.1f", 2.0, "+2.0"),
        ("% .1f", 2.0, " 2.0"),
        ("%+v", 2.0, "2"),
        ("%5.1f", f64::NAN, "  NaN"),
        ("%05.1f", f64::INFINITY, " +Inf"),
        ("%+f", f64::NAN, "+NaN"),
        ("%#g", 1.0, "1.00000"),
        ("%#.3g", 1.0, "1.00"),
        ("%#.0f", 1.0, "1."),
        ("%.3f", -0.0001, "-0.000"),
        ("%v", 1e20, "1e+20"),
        ("%.1f", 0.05, "0.1"),
        ("%.2f", 1.005, "1.00"),
    ];
    for (fmt, x, want) in cases {
        assert_eq!(&sprintf(fmt, &[Value::Float(*x)]), want, "{fmt} {x}");
    }
}

#[test]
fn integers_strings_and_flags() {
    let s = |x: &str| Value::str(x);
    let cases: Vec<(&str, Vec<Value>, &str)> = vec![
        ("%d", vec![Value::Int(42)], "42"),
        (
            "%5d|%-5d|%05d",
            vec![Value::Int(42), Value::Int(42), Value::Int(-42)],
            "   42|42   |-0042",
        ),
        ("%+d % d", vec![Value::Int(5), Value::Int(5)], "+5  5"),
        ("%.3d", vec![Value::Int(7)], "007"),
        ("%.0d|", vec![Value::Int(0)], "|"),
        (
            "%x %X %#x %o %#o %O %b %#b",
            vec![
                Value::Int(255),
                Value::Int(255),
                Value::Int(255),
                Value::Int(8),
                Value::Int(8),
                Value::Int(8),
                Value::Int(5),
                Value::Int(5),
            ],
            "ff FF 0xff 10 010 0o10 101 0b101",
        ),
        ("%x", vec![Value::Int(-255)], "-ff"),
        ("%c%c", vec![Value::Int(72), Value::Int(0x263A)], "H☺"),
        ("%q", vec![Value::Int(39)], "'\\''"),
        (
            "%U %#U",
            vec![Value::Int(0x1F600), Value::Int(65)],
            "U+1F600 U+0041 'A'",
        ),
        (
            "%s|%10s|%-10s|%.2s",
            vec![s("abc"), s("abc"), s("abc"), s("abc")],
            "abc|       abc|abc       |ab",
        ),
        ("%q", vec![s("a\"b\n\u{1}é")], "\"a\\\"b\\n\\x01é\""),
        ("%+q", vec![s("é")], "\"\\u00e9\""),
        ("%#q", vec![s("a\"b")], "`a\"b`"),
        (
            "%x|% X|%#x",
            vec![s("hi"), s("hi"), s("hi")],
            "6869|68 69|0x6869",
        ),
        (
            "%t %v",
            vec![Value::Bool(true), Value::Bool(false)],
            "true false",
        ),
        (
            "%v %d",
            vec![
                Value::list(vec![Value::Int(1), s("a")]),
                Value::list(vec![Value::Int(1), Value::Int(2)]),
            ],
            "[1 a] [1 2]",
        ),
        (
            "%v",
            vec![Value::str_map([("b", "2"), ("a", "1")])],
            "map[a:1 b:2]",
        ),
        ("%d", vec![s("x")], "%!d(string=x)"),
        ("%s", vec![Value::Int(5)], "%!s(int=5)"),
        ("%d", vec![Value::Float(1.5)], "%!d(float64=1.5)"),
        ("%d", vec![Value::Nil], "%!d(<nil>)"),
        ("%v %s", vec![Value::Nil], "<nil> %!s(MISSING)"),
        (
            "%d",
            vec![Value::Int(1), s("x"), Value::Nil],
            "1%!(EXTRA string=x, <nil>)",
        ),
        ("100%%", vec![], "100%"),
        ("%", vec![], "%!(NOVERB)"),
        ("%z", vec![Value::Int(1)], "%!z(int=1)"),
        (
            "%*d|%-*d",
            vec![Value::Int(4), Value::Int(1), Value::Int(3), Value::Int(2)],
            "   1|2  ",
        ),
        ("%.*f", vec![Value::Int(2), Value::Float(4.56789)], "4.57"),
        ("%[2]d %[1]d", vec![Value::Int(1), Value::Int(2)], "2 1"),
        ("%[3]d", vec![Value::Int(1)], "%!d(BADINDEX)"),
        (
            "%T %T %T",
            vec![Value::Int(1), s("a"), Value::Float(1.0)],
            "int string float64",
        ),
        ("%6.2v|", vec![s("abcdef")], "    ab|"),
    ];
    for (fmt, args, want) in cases {
        assert_eq!(sprintf(fmt, &args), want, "{fmt}");
    }
}

#[test]
fn print_spacing() {
    let v = vec![
        Value::Int(1),
        Value::Int(2),
        Value::str("a"),
        Value::Int(3),
        Value::str("b"),
        Value::str("c"),
        Value::Float(4.5),
        Value::Nil,
    ];
    assert_eq!(sprint(&v), "1 2a3bc4.5 <nil>");
    assert_eq!(sprintln(&v), "1 2 a 3 b c 4.5 <nil>\n");
}

#[test]
fn format_float_modes() {
    assert_eq!(format_float(1234.5, 'e', -1), "1.2345e+03");
    assert_eq!(format_float(1234.5, 'f', -1), "1234.5");
    assert_eq!(format_float(0.000001234, 'f', -1), "0.000001234");
    assert_eq!(format_float(1e21, 'f', 0), "1000000000000000000000");
}

/// Found by the `template` fuzz target: `{{ printf "%.2043064f" 1.5 }}` panicked in Rust's
/// formatter (precision over u16::MAX); Go prints the digits, zeros past the exact value.
#[test]
fn printf_precision_over_u16_max_does_not_panic() {
    let out = sprintf("%.2043064f", &[Value::Float(0.25)]);
    assert_eq!(out.len(), 2 + 2_043_064);
    assert!(out.starts_with("0.250"));
    assert!(out[4..].bytes().all(|b| b == b'0'));

    // The exact value of a third runs to 54 digits after the point, then zeros.
    let third = sprintf("%.70000f", &[Value::Float(1.0 / 3.0)]);
    let exact = format!("{:.1100}", 1.0f64 / 3.0);
    assert_eq!(&third[..exact.len()], exact);
    assert!(third[exact.len()..].bytes().all(|b| b == b'0'));
    assert_eq!(third.len(), 2 + 70_000);

    let e = sprintf("%.70000e", &[Value::Float(0.25)]);
    assert_eq!(e.len(), "2.".len() + 70_000 + "e-01".len());
    assert!(e.starts_with("2.500") && e.ends_with("0e-01"));
    assert_eq!(sprintf("%.70000g", &[Value::Float(0.25)]), "0.25");
    assert_eq!(
        sprintf("%.*f", &[Value::Int(999_999), Value::Float(5e-324)]).len(),
        1_000_001
    );
}
