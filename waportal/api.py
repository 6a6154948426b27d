"""The REST API (django-ninja): routes at the root, as the contract's existing clients expect."""

from django.urls import path

# Replaced by the NinjaAPI instance's urls once the API is written.
urls: list = []
_ = path
