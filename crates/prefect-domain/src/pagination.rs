//! Page-based listing responses (`…/paginate`).

use serde::{Deserialize, Serialize};

/// Prefect's default and maximum page size for filter routes.
pub const DEFAULT_LIMIT: u64 = 200;

/// One page of results: `{results, count, limit, pages, page}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paginated<T> {
    pub results: Vec<T>,
    pub count: u64,
    pub limit: u64,
    pub pages: u64,
    pub page: u64,
}

impl<T> Paginated<T> {
    /// Builds a page; `pages` is `ceil(count / limit)`.
    pub fn new(results: Vec<T>, count: u64, limit: u64, page: u64) -> Self {
        let pages = if limit == 0 { 0 } else { count.div_ceil(limit) };
        Paginated { results, count, limit, pages, page }
    }

    /// Offset of the first row of `page` (1-based).
    pub fn offset(page: u64, limit: u64) -> u64 {
        page.saturating_sub(1).saturating_mul(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_up() {
        let p = Paginated::new(vec![1, 2], 3, 2, 1);
        assert_eq!(p.pages, 2);
        assert_eq!(Paginated::<()>::offset(2, 2), 2);
    }
}
