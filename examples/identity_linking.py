# "User Identity Linking",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

# User starts as anonymous visitor
anonymous_id = 'anonymous_user_abc123'
posthog.capture(anonymous_id, 'page_viewed', {'page': 'landing'})
posthog.capture(anonymous_id, 'signup_started')

# User completes registration
identified_id = 'user_456'
posthog.capture(identified_id, 'signup_completed', {
    'email': 'user@example.com'
})

# Link anonymous behavior to identified user
posthog.alias(anonymous_id, identified_id)

# Set user properties after identification
posthog.set(identified_id, {
    'email': 'user@example.com',
    'plan': 'free',
    'verified': True
})
