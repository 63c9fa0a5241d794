"""Who may do what to a bucket: the one decision every S3 request goes through. Pure.

Inputs: the bucket's owner and its access settings (policy, ACL, public access block,
ownership controls: ``BucketAccess``), the requester (a canonical id, None when
anonymous), S3's action name, the resource ARN, the condition context, and for an
object action the ACL the object holds. The order is S3's for a bucket owned by one
account and requesters who are each their own account:

1. a policy statement that denies the request denies it (even to the owner; only the
   owner's management of the policy itself is never denied, so a policy cannot lock its
   bucket's owner out, as the account root of S3 cannot be locked out);
2. the owner may do anything else;
3. a policy statement that allows it allows it, except that with RestrictPublicBuckets a
   public policy's statements allow no one but the owner;
4. an ACL grant allows what its permission covers (``relay.access.acl``), unless ACLs are
   disabled (BucketOwnerEnforced) or, for grants to everyone, IgnorePublicAcls is set;
5. nothing else is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from relay.access import acl
from relay.access.policy import ARN_PREFIX, ConditionContext, Policy

# Managing the policy is the owner's always: a policy denying it would be irreversible.
_OWNER_ONLY_UNDENIABLE: Final = frozenset(
    {"s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"}
)

OWNERSHIP_CHOICES: Final = ("BucketOwnerPreferred", "ObjectWriter", "BucketOwnerEnforced")
# What relay answers when a bucket has no ownership controls of its own: ACLs are
# honoured and every object belongs to its bucket's owner (README, "Object ownership").
DEFAULT_OWNERSHIP: Final = "BucketOwnerPreferred"


@dataclass(frozen=True, slots=True)
class PublicAccessBlock:
    block_public_acls: bool = False
    ignore_public_acls: bool = False
    block_public_policy: bool = False
    restrict_public_buckets: bool = False


@dataclass(frozen=True, slots=True)
class BucketAccess:
    owner: str
    policy: Policy | None = None
    grants: tuple[acl.Grant, ...] | None = None  # None: private (the owner's FULL_CONTROL)
    public_access_block: PublicAccessBlock = field(default_factory=PublicAccessBlock)
    ownership: str = DEFAULT_OWNERSHIP

    @property
    def acls_enabled(self) -> bool:
        return self.ownership != "BucketOwnerEnforced"

    def effective_grants(self) -> tuple[acl.Grant, ...]:
        return self.grants if self.grants is not None else ((self.owner, "FULL_CONTROL"),)

    def policy_is_public(self) -> bool:
        return self.policy is not None and self.policy.is_public()


def bucket_arn(bucket: str) -> str:
    return f"{ARN_PREFIX}{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"{ARN_PREFIX}{bucket}/{key}"


def _acl_allows(
    grants: tuple[acl.Grant, ...],
    principal: str | None,
    permission: str,
    block: PublicAccessBlock,
) -> bool:
    if block.ignore_public_acls:
        grants = acl.private_grants(grants)
    return acl.grants_allow(grants, principal, permission)


def decide(
    bucket: BucketAccess,
    principal: str | None,
    action: str,
    resource: str,
    context: ConditionContext,
    *,
    object_grants: tuple[acl.Grant, ...] | None = None,
) -> bool:
    """Whether ``principal`` (None: anonymous) may do ``action`` on ``resource``.

    ``object_grants``: the object's ACL for an object action (None: private)."""
    is_owner = principal is not None and principal == bucket.owner
    if is_owner and action in _OWNER_ONLY_UNDENIABLE:
        return True
    verdict = None
    if bucket.policy is not None:
        verdict = bucket.policy.evaluate(principal, action, resource, context)
    if verdict == "Deny":
        return False
    if is_owner:
        return True
    if verdict == "Allow":
        restricted = (
            bucket.public_access_block.restrict_public_buckets
            and bucket.policy is not None
            and bucket.policy.is_public()
        )
        if not restricted:
            return True
    if not bucket.acls_enabled:
        return False
    block = bucket.public_access_block
    if action in acl.OBJECT_ACL_ACTIONS:
        grants = object_grants if object_grants is not None else ((bucket.owner, "FULL_CONTROL"),)
        return _acl_allows(grants, principal, acl.OBJECT_ACL_ACTIONS[action], block)
    if action in acl.BUCKET_ACL_ACTIONS:
        permission = acl.BUCKET_ACL_ACTIONS[action]
        return _acl_allows(bucket.effective_grants(), principal, permission, block)
    return False
