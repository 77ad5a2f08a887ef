# "Validation and Fallbacks",
# from the user and group management docs this API follows (only the import changed).
import posthog_otel as posthog

# Properties are automatically validated
posthog.set('user123', {
    'valid_string': 'hello',
    'valid_number': 42,
    'invalid_function': lambda x: x,  # Dropped - not serializable
    'nested_object': {'key': 'value'}  # Flattened automatically
})

# Automatic fallback for missing distinct_id
with posthog.new_context():
    # No context user set - operation is no-op
    posthog.set({'property': 'value'})  # Does nothing

    posthog.identify_context('user123')
    posthog.set({'property': 'value'})  # Works correctly
