//! Optional normalisation of tokens so that spellings of one tag count together: case folding
//! (`#INSEE` and `#Insee`) and Unicode NFC (an `é` typed as `e` + combining accent and the
//! precomposed `é`).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::{IsNormalized, is_nfc_quick};

/// Which normalisations apply (none by default: Spark counts tokens as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalize {
    /// Lower-case with Unicode's default case mapping (`str::to_lowercase`).
    pub lowercase: bool,
    /// Unicode canonical composition (NFC).
    pub nfc: bool,
}

impl Normalize {
    pub fn is_identity(&self) -> bool {
        !self.lowercase && !self.nfc
    }

    /// `token`, normalised; `buf` holds the result when it differs.
    ///
    /// ```
    /// use trendflow_ops::normalize::Normalize;
    /// let n = Normalize { lowercase: true, nfc: true };
    /// let mut buf = String::new();
    /// assert_eq!(n.apply("#INSEE", &mut buf), "#insee");
    /// assert_eq!(n.apply("#Cafe\u{301}", &mut buf), "#caf\u{e9}");
    /// ```
    pub fn apply<'a>(&self, token: &'a str, buf: &'a mut String) -> &'a str {
        let lower = self.lowercase && token.chars().any(|c| c.is_uppercase());
        // ASCII is always NFC; most tokens are.
        let compose =
            self.nfc && !token.is_ascii() && is_nfc_quick(token.chars()) != IsNormalized::Yes;
        if !lower && !compose {
            return token;
        }
        buf.clear();
        match (lower, compose) {
            (true, true) => buf.extend(token.to_lowercase().nfc()),
            (true, false) => buf.push_str(&token.to_lowercase()),
            (false, _) => buf.extend(token.nfc()),
        }
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_unless_asked() {
        let mut buf = String::new();
        assert_eq!(Normalize::default().apply("#INSEE", &mut buf), "#INSEE");
        let lower = Normalize {
            lowercase: true,
            nfc: false,
        };
        assert_eq!(lower.apply("#ÉCO", &mut buf), "#éco");
        let nfc = Normalize {
            lowercase: false,
            nfc: true,
        };
        assert_eq!(nfc.apply("#E\u{301}co", &mut buf), "#\u{c9}co");
        assert_eq!(nfc.apply("#already", &mut buf), "#already");
    }
}
