-- Role and product names match ignoring the case of A–Z (SQLite's built-in lower() changes only
-- ASCII letters): index the folded names that audiences join on.
DROP INDEX user_roles_by_role;
CREATE INDEX user_roles_by_folded_role ON user_roles (lower(role), user_id);
DROP INDEX user_products_by_product;
CREATE INDEX user_products_by_folded_product ON user_products (lower(product), user_id);
