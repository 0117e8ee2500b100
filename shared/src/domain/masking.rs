//! Masking of personal data. A full card number (PAN) in free text is masked before it is
//! stored, keeping the first 6 and last 4 digits as card schemes allow; phone numbers are
//! masked wherever they leave the case record (lists, logs, webhooks).

/// Masks every card number found in `text`: a run of 13–19 digits (optionally grouped by
/// single spaces or hyphens, as people type them) that passes the Luhn check. Shorter runs
/// (phone numbers, amounts) and runs failing Luhn (order numbers) are left alone.
pub fn mask_pans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_digit()) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Collect a candidate run: digits with single separators between them.
        let mut j = i;
        let mut digit_positions = Vec::new();
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digit_positions.push(j);
                j += 1;
            } else if (chars[j] == ' ' || chars[j] == '-')
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_digit()
                && j > i
                && chars[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let digits: String = digit_positions.iter().map(|&p| chars[p]).collect();
        if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
            let n = digit_positions.len();
            for (k, &p) in digit_positions.iter().enumerate() {
                let _ = p;
                if k < 6 || k >= n - 4 {
                    out.push(digits.as_bytes()[k] as char);
                } else {
                    out.push('*');
                }
            }
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (idx, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if idx % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// `13800138000` → `138****8000`; anything shorter than 7 characters is masked whole.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// For text that leaves the hub outside the case record (error answers, log lines): card
/// numbers as [`mask_pans`], then every other run of 7 or more digits as a phone number,
/// whatever it really is, so no full phone number or PAN is ever echoed.
pub fn mask_numbers(text: &str) -> String {
    let text = mask_pans(text);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push_str(&mask_phone(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_in_free_text_keeps_only_its_first_six_and_last_four_digits() {
        assert_eq!(
            mask_pans("卡号6222021234567890128被盗刷"),
            "卡号622202*********0128被盗刷"
        );
    }

    #[test]
    fn a_grouped_card_number_is_masked_and_the_separators_dropped() {
        assert_eq!(
            mask_pans("card 4111 1111 1111 1111."),
            "card 411111******1111."
        );
        assert_eq!(mask_pans("4111-1111-1111-1111"), "411111******1111");
    }

    #[test]
    fn phone_numbers_amounts_and_non_luhn_numbers_are_left_alone() {
        let text = "电话13800138000，金额299.00，订单号1234567890123";
        assert_eq!(mask_pans(text), text);
    }

    #[test]
    fn text_for_errors_and_logs_carries_no_full_phone_or_card_number() {
        let masked =
            mask_numbers("invalid type: string \"13800138000\", card 6222021234567890128, 299.00");
        assert!(!masked.contains("13800138000"), "{masked}");
        assert!(!masked.contains("6222021234567890128"), "{masked}");
        assert!(
            masked.contains("138****8000") && masked.contains("299.00"),
            "{masked}"
        );
    }

    #[test]
    fn phones_are_masked_in_the_middle() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(mask_phone("12345"), "*****");
    }
}
