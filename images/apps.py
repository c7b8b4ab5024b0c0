from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "images"
    verbose_name = "Images and albums"

    def ready(self) -> None:
        from generations.backends import register

        from . import account_data, checks, tasks  # noqa: F401  (tasks are sent by name)

        register("pillow", "images.backends.PillowEnhancer")
        register("openai-edit", "images.backends.HostedEnhancer")
        account_data.register()
