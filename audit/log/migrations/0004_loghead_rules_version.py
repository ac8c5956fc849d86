from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit_log", "0003_verification_run")]

    operations = [
        migrations.AddField(model_name="loghead", name="rules_version", field=models.BigIntegerField(default=0)),
    ]
