-- Role and product names match ignoring the case of A–Z. translate() changes exactly those letters
-- (lower() would follow the locale) and is immutable, so the folded names can be indexed; the
-- expressions must stay identical to the dialect's fold().
DROP INDEX user_roles_by_role;
CREATE INDEX user_roles_by_folded_role
    ON user_roles (translate(role, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), user_id);
DROP INDEX user_products_by_product;
CREATE INDEX user_products_by_folded_product
    ON user_products (translate(product, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), user_id);
