"""WSGI entry point for gunicorn. Production settings unless told otherwise: a server started
without DJANGO_SETTINGS_MODULE must refuse to run without its secrets, not fall back to DEBUG.
(`manage.py runserver` sets the development settings before it loads this module.)"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
application = get_wsgi_application()
