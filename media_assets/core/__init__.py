"""The shared kernel of the pure core: typed values, the policy, the store and inbox
interfaces and the errors that decide a file's fate. Never imports dagster."""
