"""Access decisions, pure: S3's bucket policy language (``policy``), ACLs (``acl``), and
the one decision that combines them with ownership and the public access block
(``decide``). No I/O and no trio: the S3 layer gathers the inputs and asks."""
